// The worker loop against a real redis-server with the FakeRenderer: outcomes, pipelining,
// drain, cancel, resume and malformed scenes.
#include <fcntl.h>
#include <unistd.h>

#include <set>
#include <sstream>
#include <thread>

#include "fake_renderer.h"
#include "support/process.h"
#include "support/queue_fixture.h"
#include "worker.h"

namespace scenefarm::testing {
namespace {

using namespace std::chrono_literals;

Scene FakeScene(const std::string& id, nlohmann::json fake, std::optional<int> budget = {}) {
  Scene s = MakeScene(id, 0, budget);
  s.metadata = {{"fake", fake}};
  return s;
}

class WorkerTest : public ::testing::Test {
 protected:
  WorkerTest() : client_(redis_.options()), queue_(client_, {}, clock_) {
    options_.redis_url = redis_.url();
    options_.worker_id = "w-test";
    options_.lease_seconds = 2;
    options_.heartbeat_seconds = 0.2;
    options_.drain_seconds = 10;
    options_.idle_poll_seconds = 0.02;
    options_.retry_backoff_seconds = 0;  // due at once: the fake clock does not move by itself
    options_.retry_backoff_max_seconds = 0;
  }
  ~WorkerTest() override { StopWorker(); }

  void StartWorker() {
    worker_ = std::make_unique<worker::Worker>(options_, renderer_, clock_);
    thread_ = std::thread([this] { worker_->Run(stop_); });
  }
  void StopWorker() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  int64_t Outcome(const char* name) {
    auto st = queue_.GetStatus(30s);
    return st.ok() ? st->outcomes[name] : -1;
  }
  queue::Depth Depth() { return queue_.GetStatus(30s)->depth; }

  RedisServer redis_;
  // The queue's time: leases expire only when a test moves it, however slow the machine is.
  FakeClock clock_;
  redis::Client client_;
  queue::Queue queue_;
  WorkerOptions options_;
  FakeRenderer renderer_;
  std::atomic<bool> stop_{false};
  std::unique_ptr<worker::Worker> worker_;
  std::thread thread_;
};

TEST_F(WorkerTest, RendersEverySceneAndPipelinesTheNext) {
  std::vector<Scene> scenes;
  for (int i = 0; i < 20; ++i)
    scenes.push_back(FakeScene(std::string("s").append(std::to_string(i)), {{"ms", 20}}));
  ASSERT_TRUE(queue_.Enqueue(scenes).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return Outcome("succeeded") == 20; }, 20s));
  EXPECT_GE(renderer_.max_in_flight(), 2u);  // the next scene was submitted while one rendered
  auto d = Depth();
  EXPECT_EQ(d.pending + d.leased + d.delayed + d.dead, 0);
  EXPECT_EQ(queue_.Show("s3")->result["rendered_by"], "fake");
}

TEST_F(WorkerTest, FailuresRetryThenDeadLetterAndPermanentOnesAtOnce) {
  ASSERT_TRUE(queue_
                  .Enqueue({FakeScene("flaky", {{"fail", "retry"}, {"fail_attempts", 1}}, 1),
                            FakeScene("broken", {{"fail", "retry"}}, 1),
                            FakeScene("rejected", {{"fail", "permanent"}}, 5)})
                  .ok());
  StartWorker();
  ASSERT_TRUE(
      WaitFor([&] { return Outcome("succeeded") == 1 && Outcome("dead_lettered") == 2; }, 20s));
  EXPECT_EQ(queue_.Show("flaky")->attempts, 2);
  EXPECT_EQ(queue_.Show("broken")->state, "dead");
  EXPECT_EQ(queue_.Show("broken")->reason, "INTERNAL: fake execution_error");
  EXPECT_EQ(queue_.Show("rejected")->attempts, 1);
  EXPECT_EQ(queue_.Show("rejected")->reason, "INVALID_ARGUMENT: fake 400");
}

TEST_F(WorkerTest, MalformedSceneDocumentIsDeadLetteredAndTheWorkerGoesOn) {
  ASSERT_TRUE(queue_.Enqueue({FakeScene("bad", {}), FakeScene("good", {})}).ok());
  // A document corrupted in Redis (or written by an older tool) fails validation on lease.
  ASSERT_TRUE(client_.Command({"SET", "sf:{scenes}:doc:bad", "{\"workflow\": 7"}).ok());
  StartWorker();
  ASSERT_TRUE(
      WaitFor([&] { return Outcome("succeeded") == 1 && Outcome("dead_lettered") == 1; }, 20s));
  const auto info = queue_.Show("bad");
  EXPECT_EQ(info->state, "dead");
  EXPECT_NE(info->reason.find("invalid scene document"), std::string::npos) << info->reason;
}

TEST_F(WorkerTest, StopWithShortDrainReleasesEverythingWithoutSpendingBudget) {
  options_.drain_seconds = 0.3;
  ASSERT_TRUE(
      queue_.Enqueue({FakeScene("long1", {{"ms", 60000}}), FakeScene("long2", {{"ms", 60000}})})
          .ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return Depth().leased == 2; }));
  StopWorker();
  auto d = Depth();
  EXPECT_EQ(d.pending, 2);
  EXPECT_EQ(d.leased, 0);
  EXPECT_EQ(queue_.Show("long1")->failures, 0);
  EXPECT_EQ(queue_.Show("long2")->failures, 0);
  EXPECT_EQ(renderer_.withdrawn().size(), 2u);
  EXPECT_EQ(Outcome("failed"), 0);
}

TEST_F(WorkerTest, StopFinishesTheSceneInHandWithinTheDrain) {
  ASSERT_TRUE(
      queue_.Enqueue({FakeScene("inhand", {{"ms", 800}}), FakeScene("next", {{"ms", 800}})}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return Depth().leased == 2; }));
  StopWorker();
  EXPECT_EQ(queue_.Show("inhand")->state, "succeeded");
  EXPECT_EQ(queue_.Show("next")->state, "pending");  // pipelined, released
}

TEST_F(WorkerTest, CancelOfARenderingSceneStopsIt) {
  options_.pipeline_depth = 0;
  ASSERT_TRUE(queue_.Enqueue({FakeScene("c", {{"ms", 60000}})}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return Depth().leased == 1; }));
  ASSERT_EQ(*queue_.Cancel("c"), "leased");
  ASSERT_TRUE(WaitFor([&] { return queue_.Show("c")->state == "cancelled"; }));
  EXPECT_EQ(Outcome("cancelled"), 1);
}

TEST_F(WorkerTest, RestartedWorkerResumesTheScenesItsIdHeld) {
  ASSERT_TRUE(queue_.Enqueue({FakeScene("held", {})}).ok());
  auto before = queue_.Lease("w-test", 60s);  // the previous life of this worker id
  ASSERT_TRUE(before.ok() && before->has_value());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return queue_.Show("held")->state == "succeeded"; }));
  EXPECT_EQ(queue_.Show("held")->attempts, 2);
  EXPECT_EQ(queue_.Ack(**before, "w-test", {}).code(), StatusCode::kAborted);
}

TEST_F(WorkerTest, RedisOutageDoesNotStopTheWorker) {
  // The worker as a process, so that its log shows when it has met the outage.
  TempDir dir;
  Process w({SCENEFARM_TEST_WORKER_BIN, "--redis-url", redis_.url(), "--worker-id", "w-test",
             "--lease-seconds", "2", "--heartbeat-seconds", "0.2", "--idle-poll-seconds", "0.02"},
            dir.path() / "w.log");
  ASSERT_TRUE(WaitFor([&] {
    return client_.Command({"ZSCORE", "sf:workers", "w-test"})->AsInt() > 0;
  }));
  redis_.Stop();
  // Met the outage: its heartbeat or lease call failed and it went on.
  ASSERT_TRUE(WaitFor(
      [&] {
        const std::string log = w.Log();
        return log.find("\"heartbeat_failed\"") != std::string::npos ||
               log.find("\"lease_failed\"") != std::string::npos;
      },
      20s))
      << w.Log();
  redis_.Start();
  ASSERT_TRUE(queue_.Enqueue({FakeScene("after", {})}).ok() ||
              WaitFor([&] { return queue_.Enqueue({FakeScene("after", {})}).ok(); }));
  EXPECT_TRUE(WaitFor([&] { return Outcome("succeeded") == 1; }, 20s)) << w.Log();
}

TEST_F(WorkerTest, AFailingReclaimIsLogged) {
  // A leased set of the wrong type makes reclaim.lua fail, as any script error would.
  ASSERT_TRUE(client_.Command({"SET", "sf:{scenes}:leased", "not a sorted set"}).ok());
  TempDir dir;
  Process w({SCENEFARM_TEST_WORKER_BIN, "--redis-url", redis_.url(), "--worker-id", "w-reclaim",
             "--lease-seconds", "2", "--heartbeat-seconds", "0.2", "--idle-poll-seconds", "0.05"},
            dir.path() / "w.log");
  ASSERT_TRUE(WaitFor([&] { return w.Log().find("\"reclaim_failed\"") != std::string::npos; }))
      << w.Log();
  EXPECT_NE(w.Log().find("WRONGTYPE"), std::string::npos) << w.Log();
}

// Worker::SetStopPipe (what worker_main's signal handler uses): with a beat due only in 600 s,
// the idle worker blocks on its wake lists and its heartbeat thread sleeps in poll(2); the byte
// that comes with `stop` wakes the heartbeat thread, which wakes the loop, and Run returns.
// Without the byte both would sleep on for minutes (the old 20 ms look at `stop` is gone).
TEST_F(WorkerTest, AByteOnTheStopPipeEndsAnIdleWorkersLongSleepsAtOnce) {
  options_.heartbeat_seconds = 600;
  options_.lease_seconds = 1200;
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  worker_ = std::make_unique<worker::Worker>(options_, renderer_, clock_);
  worker_->SetStopPipe(fds[0], fds[1]);
  std::atomic<bool> returned{false};
  thread_ = std::thread([&] {
    worker_->Run(stop_);
    returned = true;
  });
  // Its first beat, then the loop blocks: nothing is pending.
  ASSERT_TRUE(WaitFor([&] {
    auto r = client_.Command({"ZSCORE", "sf:workers", "w-test"});
    return r.ok() && !r->is_nil();
  }));
  stop_ = true;
  const char byte = 1;
  ASSERT_EQ(write(fds[1], &byte, 1), 1);
  EXPECT_TRUE(WaitFor([&] { return returned.load(); }, 60s));
  thread_.join();
  close(fds[0]);
  close(fds[1]);
}

// Issue #17: a worker serving two queues renders the one that is not paused, keeps its
// heartbeat, says which queue is paused (log and worker hash), and takes up the paused queue
// once it is resumed.
TEST_F(WorkerTest, APausedQueueIsSkippedWhileTheOtherRendersAndHeartbeatsGoOn) {
  options_.queues = {"scenes", "other"};
  queue::QueueOptions oo;
  oo.name = "other";
  queue::Queue other(client_, oo, clock_);
  ASSERT_TRUE(*queue_.Pause("test"));
  ASSERT_TRUE(queue_.Enqueue({FakeScene("p1", nlohmann::json::object())}).ok());
  ASSERT_TRUE(other.Enqueue({FakeScene("o1", nlohmann::json::object())}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return other.Show("o1")->state == "succeeded"; }, 20s));
  auto paused_field = [&] {
    return client_.Command({"HGET", queue::WorkerKey("w-test"), "paused_queues"})->AsString();
  };
  ASSERT_TRUE(WaitFor([&] { return paused_field() == R"(["scenes"])"; }));
  EXPECT_EQ(queue_.Show("p1")->state, "pending");
  // Still heartbeating: its entry in sf:workers comes back after being removed.
  ASSERT_TRUE(client_.Command({"ZREM", queue::kWorkersKey, "w-test"}).ok());
  EXPECT_TRUE(WaitFor([&] {
    return client_.Command({"ZSCORE", queue::kWorkersKey, "w-test"})->AsString() != "";
  }));
  EXPECT_EQ(queue_.Show("p1")->state, "pending");
  ASSERT_TRUE(*queue_.Resume("test"));
  EXPECT_TRUE(WaitFor([&] { return queue_.Show("p1")->state == "succeeded"; }, 20s));
  EXPECT_TRUE(WaitFor([&] { return paused_field() == "[]"; }));
}

// Issue #14 P7: an idle worker blocks on its queues' wake lists (BLPOP) instead of polling.
// Heartbeats (and so reclaims, and the wait's own end) are 30 s apart here: only a wake explains
// a pickup within the tests' bounds.
class IdleWorkerTest : public ::testing::Test {
 protected:
  IdleWorkerTest() : client_(redis_.options()), queue_(client_, {}, clock_) {}
  ~IdleWorkerTest() override { Stop(); }

  WorkerOptions Options(const std::string& id) {
    WorkerOptions o;
    o.redis_url = redis_.url();
    o.worker_id = id;
    o.lease_seconds = 120;
    o.heartbeat_seconds = 30;
    o.drain_seconds = 10;
    o.idle_poll_seconds = 30;
    o.pipeline_depth = 0;  // one scene per worker at a time
    o.retry_backoff_seconds = 1;
    o.retry_backoff_max_seconds = 1;
    return o;
  }
  void Start(int n, std::optional<WorkerOptions> options = {}) {
    for (int i = 0; i < n; ++i) {
      renderers_.push_back(std::make_unique<FakeRenderer>());
      WorkerOptions o = options ? *options : Options("idle-" + std::to_string(i));
      workers_.push_back(std::make_unique<worker::Worker>(o, *renderers_.back(), clock_));
      worker::Worker* w = workers_.back().get();
      threads_.emplace_back([this, w] { w->Run(stop_); });
    }
  }
  // Stops the workers; returns how long that took.
  std::chrono::milliseconds Stop() {
    const auto start = std::chrono::steady_clock::now();
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                 start);
  }
  // Clients blocked in BLPOP: the idle workers' loops.
  int64_t Blocked() {
    auto info = client_.Command({"INFO", "clients"});
    if (!info.ok()) return -1;
    const std::string text = info->str;
    const auto at = text.find("blocked_clients:");
    return at == std::string::npos ? -1 : std::atoll(text.c_str() + at + 16);
  }
  int64_t Outcome(const char* name) {
    auto st = queue_.GetStatus(30s);
    return st.ok() ? st->outcomes[name] : -1;
  }
  // The calls of every command, scripts' inner calls included (INFO commandstats).
  int64_t AllCalls() {
    auto info = client_.Command({"INFO", "commandstats"});
    int64_t calls = 0;
    std::istringstream lines(info.ok() ? info->str : "");
    for (std::string line; std::getline(lines, line);) {
      const auto at = line.find(":calls=");
      if (line.rfind("cmdstat_", 0) == 0 && at != std::string::npos)
        calls += std::atoll(line.c_str() + at + 7);
    }
    return calls;
  }

  RedisServer redis_;
  SystemClock clock_;
  redis::Client client_;
  queue::Queue queue_;
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<FakeRenderer>> renderers_;
  std::vector<std::unique_ptr<worker::Worker>> workers_;
  std::vector<std::thread> threads_;
};

TEST_F(IdleWorkerTest, AnIdleWorkerLeasesASceneEnqueuedAfterItWentIdleAndStopsPromptly) {
  Start(1);
  ASSERT_TRUE(WaitFor([&] { return Blocked() == 1; }, 20s));
  ASSERT_TRUE(queue_.Enqueue({FakeScene("late", nlohmann::json::object())}).ok());
  EXPECT_TRUE(WaitFor([&] { return Outcome("succeeded") == 1; }, 15s));
  // Idle again, blocked for up to 30 s: the stop wakes it (its own wake list).
  ASSERT_TRUE(WaitFor([&] { return Blocked() == 1; }, 20s));
  EXPECT_LT(Stop(), 15s);
  EXPECT_EQ(Blocked(), 0);
}

TEST_F(IdleWorkerTest, NIdleWorkersAllStartOnNScenes) {
  Start(3);
  ASSERT_TRUE(WaitFor([&] { return Blocked() == 3; }, 20s));
  // Each render lasts until the test releases it, so no worker can finish its scene and take a
  // second one: the three scenes are leased by three workers, or one stays pending (a worker
  // slept through the wake) and the wait fails, however slow the machine.
  FakeRenderer::HoldAgain();
  ASSERT_TRUE(queue_
                  .Enqueue({FakeScene("n1", {{"hold", true}}), FakeScene("n2", {{"hold", true}}),
                            FakeScene("n3", {{"hold", true}})})
                  .ok());
  std::set<std::string> by;
  ASSERT_TRUE(WaitFor(
      [&] {
        by.clear();
        for (const char* id : {"n1", "n2", "n3"}) {
          auto s = queue_.Show(id);
          if (s.ok() && s->state == "leased") by.insert(s->worker);
        }
        return by.size() == 3;
      },
      20s));
  FakeRenderer::ReleaseHeld();
  ASSERT_TRUE(WaitFor([&] { return Outcome("succeeded") == 3; }, 15s));
  EXPECT_LE(client_.Command({"LLEN", "sf:{scenes}:wake"})->integer, 1);
}

TEST_F(IdleWorkerTest, ADelayedSceneIsLeasedWhenDue) {
  Start(1);
  ASSERT_TRUE(WaitFor([&] { return Blocked() == 1; }, 20s));
  // Fails once: delayed by up to 1 s; the idle worker blocks no longer than its due time.
  ASSERT_TRUE(
      queue_.Enqueue({FakeScene("later", {{"fail", "retry"}, {"fail_attempts", 1}}, 1)}).ok());
  EXPECT_TRUE(WaitFor([&] { return Outcome("succeeded") == 1; }, 15s));
  EXPECT_EQ(queue_.Show("later")->attempts, 2);
}

TEST_F(IdleWorkerTest, AResumedQueueWakesIdleWorkers) {
  ASSERT_TRUE(*queue_.Pause("test"));
  Start(2);
  ASSERT_TRUE(WaitFor([&] { return Blocked() == 2; }, 20s));
  ASSERT_TRUE(
      queue_.Enqueue({FakeScene("r1", {{"ms", 1000}}), FakeScene("r2", {{"ms", 1000}})}).ok());
  // Woken, told "paused", blocked again.
  ASSERT_TRUE(WaitFor([&] { return Blocked() == 2; }, 20s));
  EXPECT_EQ(queue_.Show("r1")->state, "pending");
  ASSERT_TRUE(*queue_.Resume("test"));
  EXPECT_TRUE(WaitFor([&] { return Outcome("succeeded") == 2; }, 15s));
}

// An idle worker's cost to Redis over a window of several heartbeats: its loop's blocking
// wait, its heartbeats (the worker's hash in the same call) and its reclaims. Counted two ways:
// the commands it sends (MONITOR, scripts' inner calls left out), asserted <= 1.5/s (the target
// is 1/s), and every call Redis executes (INFO commandstats, inner calls included), printed.
TEST_F(IdleWorkerTest, AnIdleWorkerCostsRedisAboutOneCommandPerSecond) {
  WorkerOptions o = Options("counted");
  o.lease_seconds = 30;  // the defaults
  o.heartbeat_seconds = 5;
  o.idle_poll_seconds = 0.5;
  Start(1, o);
  ASSERT_TRUE(WaitFor([&] { return Blocked() == 1; }, 20s));
  TempDir dir;
  Process monitor({"/usr/bin/redis-cli", "-p", std::to_string(redis_.port()), "monitor"},
                  dir.path() / "monitor.log");
  ASSERT_TRUE(WaitFor([&] { return monitor.Log().find("OK") != std::string::npos; }));
  const int64_t calls_before = AllCalls();
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(16s);  // three heartbeat periods and more: a window, not a wait
  const int64_t calls = AllCalls() - calls_before - 1;  // less this INFO
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  monitor.Stop();
  int64_t sent = 0, tries = 0, reclaims = 0;
  std::istringstream lines(monitor.Log());
  for (std::string line; std::getline(lines, line);) {
    if (line.find("\"SET\" \"sf:{scenes}:reclaim_gate\"") != std::string::npos) ++tries;
    if (line.find("lua] \"ZREMRANGEBYSCORE\" \"sf:workers\"") != std::string::npos) ++reclaims;
    // Commands by a client ("[0 127.0.0.1:PORT]"), not a script's ("[0 lua]"); not INFO.
    if (line.find(" \"") == std::string::npos || line.find(" lua]") != std::string::npos ||
        line.find("\"INFO\"") != std::string::npos)
      continue;
    ++sent;
  }
  // Alone, it takes every turn of the periodic reclaim (its turn ends before its next try).
  EXPECT_GE(tries, 2) << monitor.Log();
  EXPECT_GE(reclaims, tries - 1) << monitor.Log();
  std::cout << "idle worker: " << sent << " commands sent in " << seconds << " s ("
            << sent / seconds << "/s); " << calls << " calls executed, inner calls included ("
            << calls / seconds << "/s)\n";
  EXPECT_GT(sent, 0) << monitor.Log();  // its heartbeats at least
  EXPECT_LE(sent / seconds, 1.5) << monitor.Log();
  EXPECT_EQ(Blocked(), 1);
}

// Idle workers take the periodic reclaim in turns (Queue::ReclaimIfDue): each tries every
// heartbeat period, and a turn holds 9/10 of one, so the farm reclaims about once a period
// however many workers it has. Seen in MONITOR (Redis's clock): the turns' SETs and each
// reclaim's ZREMRANGEBYSCORE on sf:workers (the reclaim script's first call).
TEST_F(IdleWorkerTest, IdleWorkersTakeThePeriodicReclaimInTurns) {
  TempDir dir;
  Process monitor({"/usr/bin/redis-cli", "-p", std::to_string(redis_.port()), "monitor"},
                  dir.path() / "monitor.log");
  ASSERT_TRUE(WaitFor([&] { return monitor.Log().find("OK") != std::string::npos; }));
  for (const char* id : {"turn-a", "turn-b"}) {
    WorkerOptions o = Options(id);
    o.heartbeat_seconds = 1;
    Start(1, o);
  }
  std::vector<double> tries, reclaims;
  auto count = [&] {
    tries.clear();
    reclaims.clear();
    std::istringstream lines(monitor.Log());
    for (std::string line; std::getline(lines, line);) {
      if (line.find("\"SET\" \"sf:{scenes}:reclaim_gate\"") != std::string::npos)
        tries.push_back(std::stod(line));
      else if (line.find("lua] \"ZREMRANGEBYSCORE\" \"sf:workers\"") != std::string::npos)
        reclaims.push_back(std::stod(line));
    }
    return tries.size();
  };
  ASSERT_TRUE(WaitFor([&] { return count() >= 12; }, 60s)) << monitor.Log();
  monitor.Stop();
  count();
  ASSERT_FALSE(reclaims.empty()) << monitor.Log();
  const double span = std::max(tries.back(), reclaims.back()) - tries.front();
  std::cout << tries.size() << " turns tried, " << reclaims.size() << " reclaims in " << span
            << " s\n";
  // Every turn taken began at least 0.9 s after the one before: at most one reclaim per 0.9 s
  // of the span, and one more whose turn began just before it. Each worker reclaiming every
  // period on its own would make about two a second.
  EXPECT_LE(static_cast<double>(reclaims.size()), span / 0.9 + 2) << monitor.Log();
  EXPECT_LT(reclaims.size(), tries.size()) << monitor.Log();
}

}  // namespace
}  // namespace scenefarm::testing
