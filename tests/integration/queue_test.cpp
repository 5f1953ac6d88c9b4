// The queue protocol against a real redis-server: every transition, fencing, backoff,
// dead-letter, cancel, retry, priorities, reclaim, resume, and Redis going away.
#include <thread>

#include "support/queue_fixture.h"

namespace scenefarm::testing {
namespace {

using namespace std::chrono_literals;
using queue::HeartbeatResult;

TEST_F(QueueTest, EnqueueLeaseAckRecordsOutcomesAndEvents) {
  auto created = queue_.Enqueue({MakeScene("a")});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(*created, std::vector<bool>{true});
  clock_.AdvanceMs(2500);
  auto s = MustLease("w1");
  EXPECT_EQ(s.id, "a");
  EXPECT_EQ(s.attempt, 1);
  EXPECT_EQ(s.run, "run1");
  EXPECT_EQ(s.retry_budget, 1);
  EXPECT_EQ(nlohmann::json::parse(s.doc)["workflow"]["1"]["class_type"], "EmptyImage");
  clock_.AdvanceMs(42000);
  ASSERT_TRUE(queue_.Ack(s, "w1", {{"frames", 3}}).ok());
  auto st = queue_.GetStatus(30s);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->depth.pending + st->depth.leased + st->depth.delayed + st->depth.dead, 0);
  EXPECT_EQ(st->outcomes["succeeded"], 1);
  EXPECT_EQ(Events("a"), (std::vector<std::string>{"enqueued", "leased", "succeeded"}));
  auto info = queue_.Show("a");
  EXPECT_EQ(info->state, "succeeded");
  EXPECT_EQ(info->result["frames"], 3);
  // Render duration 42 s lands in the le=45 bucket, queue wait 2.5 s in le=5.
  EXPECT_EQ(client_.Command({"HGET", "sf:{scenes}:h:duration", "45"})->AsInt(), 1);
  EXPECT_EQ(client_.Command({"HGET", "sf:{scenes}:h:duration", "sum"})->AsString(), "42");
  EXPECT_EQ(client_.Command({"HGET", "sf:{scenes}:h:queue_wait", "5"})->AsInt(), 1);
  EXPECT_TRUE(st->runs_in_progress.empty());
}

TEST_F(QueueTest, ExistingIdIsNotEnqueuedTwice) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  auto again = queue_.Enqueue({MakeScene("a"), MakeScene("b")});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, (std::vector<bool>{false, true}));
  EXPECT_EQ(queue_.GetStatus(30s)->depth.pending, 2);
}

TEST_F(QueueTest, HigherPriorityFirstAndFifoWithinAPriority) {
  ASSERT_TRUE(queue_
                  .Enqueue({MakeScene("low1", -5), MakeScene("mid1"), MakeScene("high", 10),
                            MakeScene("mid2"), MakeScene("low2", -5)})
                  .ok());
  std::vector<std::string> order;
  for (int i = 0; i < 5; ++i)
    order.push_back(MustLease("w").id);
  EXPECT_EQ(order, (std::vector<std::string>{"high", "mid1", "mid2", "low1", "low2"}));
  EXPECT_TRUE(NothingToLease("w"));
}

TEST_F(QueueTest, LateAckAfterTakeoverIsRefused) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  auto first = MustLease("w1", 30s);
  clock_.AdvanceMs(31000);  // w1 stalled: its lease expired
  EXPECT_EQ(*queue_.Reclaim(), 1);
  auto second = MustLease("w2", 30s);
  EXPECT_EQ(second.attempt, 2);
  Status late = queue_.Ack(first, "w1", {});
  EXPECT_EQ(late.code(), StatusCode::kAborted) << late.ToString();
  EXPECT_EQ(queue_.Fail(first, "w1", "x", false, 0ms).status().code(), StatusCode::kAborted);
  EXPECT_EQ(queue_.Release(first, "w1", "x").code(), StatusCode::kAborted);
  auto hb = queue_.Heartbeat("w1", 30s, {first});
  EXPECT_EQ(hb->front(), HeartbeatResult::kLost);
  ASSERT_TRUE(queue_.Ack(second, "w2", {}).ok());
  EXPECT_EQ(Events("a"),
            (std::vector<std::string>{"enqueued", "leased", "reclaimed", "leased", "succeeded"}));
}

// The workers' periodic reclaim, in turns: the first caller of a period takes the turn (and
// reclaims), the others within 9/10 of the period (4.5 s at most) get nullopt and move nothing;
// when the turn's key expires the next caller takes it; a full batch hands the turn on at once.
TEST_F(QueueTest, ReclaimIfDueReclaimsOncePerTurn) {
  const std::string gate = "sf:{scenes}:reclaim_gate";
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b"), MakeScene("c")}).ok());
  MustLease("gone1", 30s);
  MustLease("gone2", 30s);
  clock_.AdvanceMs(31000);  // both workers died: their leases expired
  auto first = queue_.ReclaimIfDue("w1", 2s);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ(**first, 2);
  EXPECT_EQ(client_.Command({"GET", gate})->AsString(), "w1");
  const int64_t ttl = client_.Command({"PTTL", gate})->AsInt();
  EXPECT_GT(ttl, 0);
  EXPECT_LE(ttl, 1800);  // 9/10 of the period
  // Another lease expires: w2's call within w1's turn leaves it for the next turn.
  MustLease("gone3", 30s);
  clock_.AdvanceMs(31000);
  auto second = queue_.ReclaimIfDue("w2", 2s);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_FALSE(second->has_value());
  EXPECT_EQ(client_.Command({"ZCARD", "sf:{scenes}:leased"})->AsInt(), 1);
  // The turn ends by itself (Redis expires the key): w2 takes the next, which reclaims.
  std::optional<int64_t> taken;
  ASSERT_TRUE(WaitFor([&] {
    auto r = queue_.ReclaimIfDue("w2", 60s);
    if (r.ok() && r->has_value()) taken = *r;
    return taken.has_value();
  }));
  EXPECT_EQ(*taken, 1);
  EXPECT_EQ(client_.Command({"GET", gate})->AsString(), "w2");
  // A long period holds the turn 4.5 s at most.
  const int64_t long_ttl = client_.Command({"PTTL", gate})->AsInt();
  EXPECT_GT(long_ttl, 0);
  EXPECT_LE(long_ttl, 4500);
  // A full batch (limit scenes moved: more may wait) hands the turn on at once.
  ASSERT_EQ(client_.Command({"DEL", gate})->AsInt(), 1);
  for (const char* w : {"gone4", "gone5", "gone6"})
    MustLease(w, 30s);
  clock_.AdvanceMs(31000);
  auto full = queue_.ReclaimIfDue("w1", 60s, 2);
  ASSERT_TRUE(full.ok() && full->has_value());
  EXPECT_EQ(**full, 2);
  EXPECT_EQ(client_.Command({"EXISTS", gate})->AsInt(), 0);
  auto rest = queue_.ReclaimIfDue("w2", 60s, 2);
  ASSERT_TRUE(rest.ok() && rest->has_value());
  EXPECT_EQ(**rest, 1);
  EXPECT_EQ(client_.Command({"GET", gate})->AsString(), "w2");
  // Reclaim (scenefarm repair, tests) takes no turn and needs none.
  EXPECT_EQ(*queue_.Reclaim(), 0);
}

TEST_F(QueueTest, HeartbeatKeepsTheLease) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  auto s = MustLease("w1", 30s);
  for (int i = 0; i < 5; ++i) {
    clock_.AdvanceMs(20000);
    auto hb = queue_.Heartbeat("w1", 30s, {s});
    ASSERT_TRUE(hb.ok());
    EXPECT_EQ(hb->front(), HeartbeatResult::kRenewed);
    EXPECT_EQ(*queue_.Reclaim(), 0);
  }
  EXPECT_EQ(client_.Command({"ZSCORE", "sf:workers", "w1"})->AsInt(), clock_.NowMs());
}

TEST_F(QueueTest, FailureRetriesAfterBackoffThenDeadLettersPastTheBudget) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a", 0, 1)}).ok());
  auto s1 = MustLease("w");
  auto r1 = queue_.Fail(s1, "w", "execution_error RuntimeError", false, 5000ms);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(*r1, "delayed");
  EXPECT_EQ(queue_.GetStatus(30s)->depth.delayed, 1);
  clock_.AdvanceMs(4999);
  EXPECT_TRUE(NothingToLease("w"));  // not due yet
  clock_.AdvanceMs(1);
  auto s2 = MustLease("w");
  EXPECT_EQ(s2.attempt, 2);
  EXPECT_EQ(s2.failures, 1);
  auto r2 = queue_.Fail(s2, "w", "execution_error again", false, 5000ms);
  EXPECT_EQ(*r2, "dead");
  auto info = queue_.Show("a");
  EXPECT_EQ(info->state, "dead");
  EXPECT_EQ(info->reason, "execution_error again");
  auto st = queue_.GetStatus(30s);
  EXPECT_EQ(st->depth.dead, 1);
  EXPECT_EQ(st->outcomes["failed"], 2);
  EXPECT_EQ(st->outcomes["retried"], 1);
  EXPECT_EQ(st->outcomes["dead_lettered"], 1);
}

TEST_F(QueueTest, PermanentFailureDeadLettersAtOnce) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a", 0, 5)}).ok());
  auto s = MustLease("w");
  EXPECT_EQ(*queue_.Fail(s, "w", "ComfyUI 400 invalid_prompt", true, 0ms), "dead");
  EXPECT_EQ(queue_.Show("a")->state, "dead");
}

TEST_F(QueueTest, BackoffIsExponentialWithFullJitterAndCapped) {
  std::mt19937_64 rng(42);
  for (int failures = 1; failures <= 12; ++failures) {
    const int64_t ceiling = std::min<int64_t>(60000, 1000LL << (failures - 1));
    int64_t seen_max = 0;
    for (int i = 0; i < 2000; ++i) {
      const auto d = queue::RetryBackoff(failures, 1000ms, 60000ms, rng).count();
      ASSERT_GE(d, 0);
      ASSERT_LE(d, ceiling);
      seen_max = std::max(seen_max, d);
    }
    EXPECT_GT(seen_max, ceiling * 9 / 10) << "failures=" << failures;
  }
}

TEST_F(QueueTest, CancelPendingRemovesIt) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b")}).ok());
  EXPECT_EQ(*queue_.Cancel("a"), "pending");
  EXPECT_EQ(MustLease("w").id, "b");
  EXPECT_TRUE(NothingToLease("w"));
  EXPECT_EQ(queue_.Show("a")->state, "cancelled");
  EXPECT_EQ(queue_.Cancel("nope").status().code(), StatusCode::kNotFound);
}

TEST_F(QueueTest, CancelLeasedIsRequestedThenAcknowledgedByItsWorker) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  auto s = MustLease("w");
  EXPECT_EQ(*queue_.Cancel("a"), "leased");
  EXPECT_EQ(queue_.Heartbeat("w", 30s, {s})->front(), HeartbeatResult::kCancelRequested);
  ASSERT_TRUE(queue_.AckCancelled(s, "w").ok());
  EXPECT_EQ(queue_.Show("a")->state, "cancelled");
  EXPECT_EQ(queue_.GetStatus(30s)->outcomes["cancelled"], 1);
}

TEST_F(QueueTest, CancelOfALeaseWhoseWorkerDiedEndsAtReclaim) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  MustLease("w", 30s);
  ASSERT_EQ(*queue_.Cancel("a"), "leased");
  clock_.AdvanceMs(31000);
  EXPECT_EQ(*queue_.Reclaim(), 1);
  EXPECT_EQ(queue_.Show("a")->state, "cancelled");
  EXPECT_TRUE(NothingToLease("w"));
}

TEST_F(QueueTest, RetryFromDeadLetterWithAFreshBudget) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a", 0, 0)}).ok());
  auto s = MustLease("w");
  ASSERT_EQ(*queue_.Fail(s, "w", "boom", false, 0ms), "dead");
  EXPECT_EQ(queue_.GetStatus(30s)->runs_in_progress, std::vector<std::string>{});
  ASSERT_TRUE(queue_.Retry("a").ok());
  EXPECT_EQ(queue_.GetStatus(30s)->runs_in_progress, std::vector<std::string>{"run1"});
  auto again = MustLease("w");
  EXPECT_EQ(again.failures, 0);
  EXPECT_EQ(queue_.Retry("a").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(queue_.Retry("missing").code(), StatusCode::kNotFound);
}

TEST_F(QueueTest, ReleaseKeepsTheBudgetAndThePlace) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b")}).ok());
  auto a = MustLease("w");
  ASSERT_TRUE(queue_.Release(a, "w", "worker draining").ok());
  auto again = MustLease("w2");
  EXPECT_EQ(again.id, "a");  // still first
  EXPECT_EQ(again.failures, 0);
  EXPECT_EQ(again.attempt, 2);
}

TEST_F(QueueTest, RestartedWorkerResumesItsLeasesWithNewAttempts) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b"), MakeScene("c")}).ok());
  auto a = MustLease("w1");
  auto b = MustLease("w1");
  MustLease("w2");
  auto resumed = queue_.Resume("w1", 30s);
  ASSERT_TRUE(resumed.ok());
  ASSERT_EQ(resumed->size(), 2u);
  for (const auto& s : *resumed)
    EXPECT_EQ(s.attempt, 2);
  EXPECT_EQ(queue_.Ack(a, "w1", {}).code(), StatusCode::kAborted);  // the old attempt
  for (const auto& s : *resumed)
    EXPECT_TRUE(queue_.Ack(s, "w1", {}).ok());
  EXPECT_TRUE(queue_.Resume("w1", 30s)->empty());
  (void)b;
}

TEST_F(QueueTest, SceneWhoseLeaseKeepsExpiringIsDeadLettered) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("crashy")}).ok());
  for (int i = 0; i < 10; ++i) {
    MustLease(std::string("w").append(std::to_string(i)), 1000ms);
    clock_.AdvanceMs(1001);
    ASSERT_EQ(*queue_.Reclaim(), 1);
  }
  auto info = queue_.Show("crashy");
  EXPECT_EQ(info->state, "dead");
  EXPECT_EQ(info->reason, "lease expired 10 times (worker lost each time)");
}

TEST_F(QueueTest, ConcurrentReclaimMovesEachSceneOnce) {
  std::vector<Scene> scenes;
  for (int i = 0; i < 200; ++i)
    scenes.push_back(MakeScene(std::string("s").append(std::to_string(i))));
  ASSERT_TRUE(queue_.Enqueue(scenes).ok());
  for (int i = 0; i < 200; ++i)
    MustLease("dead-worker", 1000ms);
  clock_.AdvanceMs(2000);
  std::atomic<int64_t> moved{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      redis::Client c(redis_.options());
      queue::Queue q(c, {}, clock_);
      for (int i = 0; i < 20; ++i)
        moved += q.Reclaim(7).value();
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(moved.load(), 200);
  auto st = queue_.GetStatus(30s);
  EXPECT_EQ(st->depth.pending, 200);
  EXPECT_EQ(st->depth.leased, 0);
  EXPECT_EQ(client_.Command({"HGET", "sf:{scenes}:stats", "reclaimed"})->AsInt(), 200);
}

TEST_F(QueueTest, OldestPendingAgeAndRunsInProgress) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  clock_.AdvanceMs(5000);
  ASSERT_TRUE(queue_.Enqueue({MakeScene("b")}).ok());
  clock_.AdvanceMs(1500);
  auto st = queue_.GetStatus(30s);
  EXPECT_DOUBLE_EQ(st->oldest_pending_age_seconds, 6.5);
  EXPECT_EQ(st->runs_in_progress, std::vector<std::string>{"run1"});
  nlohmann::json j = st->ToJson();
  for (const char* k : {"queue", "depth", "outcomes", "workers", "oldest_pending_age_seconds"}) {
    EXPECT_TRUE(j.contains(k)) << k;
  }
  for (const char* k : {"pending", "delayed", "leased", "dead"})
    EXPECT_TRUE(j["depth"].contains(k));
  for (const char* k : {"succeeded", "failed", "retried", "dead_lettered", "cancelled"}) {
    EXPECT_EQ(j["outcomes"][k], 0) << k;
  }
}

TEST_F(QueueTest, RedisRestartMidLeaseLosesNothing) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b")}).ok());
  auto a = MustLease("w");
  redis_.Restart(/*hard=*/true);  // SIGKILL; AOF (appendfsync always) keeps every write
  Status ack;
  ASSERT_TRUE(WaitFor([&] { return (ack = queue_.Ack(a, "w", {})).ok(); }))
      << ack.ToString();  // reconnects, reloads the scripts after NOSCRIPT
  EXPECT_EQ(MustLease("w").id, "b");
  EXPECT_EQ(queue_.Show("a")->state, "succeeded");
}

TEST_F(QueueTest, RedisDownIsUnavailableAndRetriedWithBackoff) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  // A second client whose backoff no scheduler delay can outlast (the default 100 ms can pass
  // between two calls on a loaded machine: seen under ASan with both cores busy, issue #15 R7).
  redis::Options slow_retry = redis_.options();
  slow_retry.reconnect_min = slow_retry.reconnect_max = std::chrono::minutes(10);
  redis::Client patient(slow_retry);
  queue::Queue patient_queue(patient, queue::QueueOptions{}, clock_);
  ASSERT_TRUE(patient_queue.Show("a").ok());
  redis_.Stop();
  auto r = queue_.Lease("w", 30s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  ASSERT_FALSE(patient_queue.Lease("w", 30s).ok());  // drops the connection
  ASSERT_FALSE(patient_queue.Lease("w", 30s).ok());  // the reconnect attempt is refused
  auto again = patient_queue.Lease("w", 30s);  // within the backoff: no connect attempt at all
  EXPECT_EQ(again.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(again.status().message().find("next reconnect attempt"), std::string::npos)
      << again.status().ToString();
  redis_.Start();
  ASSERT_TRUE(WaitFor([&] {
    auto l = queue_.Lease("w", 30s);
    return l.ok() && l->has_value();
  }));
}

TEST(RedisAuth, PasswordFromTheUrlAndAClearRefusal) {
  RedisServer server("s3cret-pass");
  redis::Client good(server.options());
  ASSERT_TRUE(good.Connect().ok());
  EXPECT_EQ(good.Command({"PING"})->str, "PONG");
  redis::Options wrong = server.options();
  wrong.url = "redis://:nope@127.0.0.1:" + std::to_string(server.port()) + "/0";
  redis::Client bad(wrong);
  Status s = bad.Connect();
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message().find("nope"), std::string::npos) << s.message();
}

// Issue #17: a paused queue leases nothing, while what is already leased is heartbeated and
// acked as usual; resumed, it leases again. Who paused and resumed is in the stream.
TEST_F(QueueTest, APausedQueueLeasesNothingUntilResumedAndRecordsWho) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b")}).ok());
  const queue::LeasedScene held = MustLease("w1");
  ASSERT_EQ(held.id, "a");
  auto paused = queue_.Pause("cli:alice");
  ASSERT_TRUE(paused.ok()) << paused.status().ToString();
  EXPECT_TRUE(*paused);
  EXPECT_FALSE(*queue_.Pause("cli:alice"));  // already paused: nothing changes
  EXPECT_TRUE(*queue_.IsPaused());
  bool said_paused = false;
  auto r = queue_.Lease("w2", std::chrono::seconds(30), &said_paused);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->has_value());
  EXPECT_TRUE(said_paused);
  EXPECT_EQ(Field("b", "state"), "pending");
  auto hb = queue_.Heartbeat("w1", std::chrono::seconds(30), {held});
  ASSERT_TRUE(hb.ok());
  ASSERT_EQ(hb->size(), 1u);
  EXPECT_EQ((*hb)[0], queue::HeartbeatResult::kRenewed);
  EXPECT_TRUE(queue_.Ack(held, "w1", nlohmann::json::object()).ok());
  auto st = queue_.GetStatus(std::chrono::seconds(30));
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->paused);
  EXPECT_EQ(st->paused_by, "cli:alice");
  EXPECT_EQ(st->ToJson()["paused"], true);
  EXPECT_EQ(st->depth.pending, 1);

  ASSERT_TRUE(*queue_.Resume("api:bob"));
  EXPECT_FALSE(*queue_.Resume("api:bob"));
  EXPECT_FALSE(*queue_.IsPaused());
  EXPECT_EQ(queue_.GetStatus(std::chrono::seconds(30))->ToJson()["paused"], false);
  r = queue_.Lease("w2", std::chrono::seconds(30), &said_paused);
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->id, "b");
  EXPECT_FALSE(said_paused);

  auto events = client_.Command({"XRANGE", "sf:{scenes}:events", "-", "+"});
  ASSERT_TRUE(events.ok());
  std::vector<std::string> seen;
  for (const auto& e : events->elements) {
    std::map<std::string, std::string> f;
    for (size_t i = 0; i + 1 < e.elements[1].elements.size(); i += 2)
      f[e.elements[1].elements[i].str] = e.elements[1].elements[i + 1].str;
    if (f["event"] == "queue_paused" || f["event"] == "queue_resumed")
      seen.push_back(f["event"] + " by " + f["by"]);
  }
  EXPECT_EQ(seen,
            (std::vector<std::string>{"queue_paused by cli:alice", "queue_resumed by api:bob"}));
}

// Delayed scenes fall due while a queue is paused: they are promoted to pending, not leased.
TEST_F(QueueTest, APausedQueueStillPromotesDueDelayedScenes) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("d", 0, 2)}).ok());
  auto s = MustLease("w1");
  ASSERT_EQ(*queue_.Fail(s, "w1", "boom", false, std::chrono::seconds(10)), "delayed");
  ASSERT_TRUE(*queue_.Pause("t"));
  clock_.AdvanceMs(20000);
  EXPECT_TRUE(NothingToLease("w1"));
  EXPECT_EQ(Field("d", "state"), "pending");
}

// An operator's cancel and retry carry who asked into the scene's history.
TEST_F(QueueTest, CancelAndRetryRecordTheActor) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("c"), MakeScene("r", 0, 0)}).ok());
  ASSERT_EQ(*queue_.Cancel("c", "api:carol"), "pending");
  auto info = queue_.Show("c");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->history.back()["event"], "cancelled");
  EXPECT_EQ(info->history.back()["by"], "api:carol");
  auto s = MustLease("w1");
  ASSERT_EQ(s.id, "r");
  ASSERT_EQ(*queue_.Fail(s, "w1", "boom", true, std::chrono::seconds(0)), "dead");
  ASSERT_TRUE(queue_.Retry("r", "cli:dave").ok());
  info = queue_.Show("r");
  EXPECT_EQ(info->history.back()["event"], "retried_from_dead");
  EXPECT_EQ(info->history.back()["by"], "cli:dave");
  // Without an actor the event has no `by` at all (the format before issue #17).
  ASSERT_EQ(*queue_.Cancel("r"), "pending");
  EXPECT_FALSE(queue_.Show("r")->history.back().contains("by"));
}

// Issue #14 P3: one round trip acks a scene, leases the next and marks the worker busy with it.
TEST_F(QueueTest, AckAndLeaseAcksLeasesTheNextAndMarksTheWorkerInOneRoundTrip) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b")}).ok());
  auto a = MustLease("w1");
  clock_.AdvanceMs(3000);
  auto r = queue_.AckAndLease(a, "w1", {{"frames", 1}}, 30s, "", {"scenes"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->run_complete);  // b is still open
  ASSERT_TRUE(r->next.has_value());
  EXPECT_EQ(r->next->id, "b");
  EXPECT_EQ(r->next->queue, "scenes");
  EXPECT_EQ(r->next->attempt, 1);
  EXPECT_EQ(r->next->run, "run1");
  EXPECT_EQ(nlohmann::json::parse(r->next->doc)["workflow"]["1"]["class_type"], "EmptyImage");
  EXPECT_EQ(r->looked_at, (std::vector<std::pair<std::string, bool>>{{"scenes", false}}));
  EXPECT_EQ(Field("a", "state"), "succeeded");
  EXPECT_EQ(Field("b", "state"), "leased");
  EXPECT_EQ(Field("b", "worker"), "w1");
  EXPECT_EQ(Events("a"), (std::vector<std::string>{"enqueued", "leased", "succeeded"}));
  EXPECT_EQ(Events("b"), (std::vector<std::string>{"enqueued", "leased"}));
  EXPECT_EQ(client_.Command({"HGET", "sf:{scenes}:h:duration", "5"})->AsInt(), 1);
  EXPECT_EQ(client_.Command({"HGET", "sf:{scenes}:h:queue_wait", "5"})->AsInt(), 1);
  auto busy = client_.Command({"HMGET", "sf:worker:w1", "busy", "scene"});
  EXPECT_EQ(busy->elements[0].AsString(), "1");
  EXPECT_EQ(busy->elements[1].AsString(), "b");
  // The last scene: nothing left to lease, the run completes, the worker is idle. One round
  // trip (the script is loaded by now).
  const int64_t trips = client_.round_trips();
  auto last = queue_.AckAndLease(*r->next, "w1", {}, 30s, "", {"scenes"});
  ASSERT_TRUE(last.ok()) << last.status().ToString();
  EXPECT_EQ(client_.round_trips() - trips, 1);
  EXPECT_TRUE(last->run_complete);
  EXPECT_FALSE(last->next.has_value());
  EXPECT_EQ(last->next_due_ms, -1);
  busy = client_.Command({"HMGET", "sf:worker:w1", "busy", "scene"});
  EXPECT_EQ(busy->elements[0].AsString(), "0");
  EXPECT_EQ(busy->elements[1].AsString(), "");
  EXPECT_EQ(queue_.GetStatus(30s)->outcomes["succeeded"], 2);
}

// The reply of an ack+lease is lost and the worker sends the call again: it gets the first
// call's answer and the same scene (same attempt), never a second scene, and loses none.
TEST_F(QueueTest, AckAndLeaseRetriedAfterALostReplyLeasesNoSecondScene) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b"), MakeScene("c")}).ok());
  auto a = MustLease("w1");
  auto first = queue_.AckAndLease(a, "w1", {}, 30s, "", {"scenes"});
  ASSERT_TRUE(first.ok() && first->next.has_value());
  auto again = queue_.AckAndLease(a, "w1", {}, 30s, "", {"scenes"});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ASSERT_TRUE(again->next.has_value());
  EXPECT_EQ(again->next->id, first->next->id);
  EXPECT_EQ(again->next->attempt, first->next->attempt);
  EXPECT_EQ(again->next->doc, first->next->doc);
  EXPECT_EQ(Field("b", "attempts"), "1");
  EXPECT_EQ(client_.Command({"ZCARD", "sf:{scenes}:pending"})->integer, 1);  // c, untouched
  EXPECT_EQ(queue_.GetStatus(30s)->outcomes["succeeded"], 1);
  // Once that lease is not the worker's any more (reclaimed), a replay hands it out no more.
  clock_.AdvanceMs(31000);
  ASSERT_EQ(*queue_.Reclaim(), 1);
  auto late = queue_.AckAndLease(a, "w1", {}, 30s, "", {"scenes"});
  ASSERT_TRUE(late.ok());
  EXPECT_FALSE(late->next.has_value());
  // Another worker's call, or a stale attempt, is fenced: nothing changes, nothing is leased.
  auto fenced = queue_.AckAndLease(a, "w2", {}, 30s, "", {"scenes"});
  EXPECT_EQ(fenced.status().code(), StatusCode::kAborted);
  EXPECT_EQ(client_.Command({"ZCARD", "sf:{scenes}:pending"})->integer, 2);
}

// The lease half follows the worker's queue order, skips a paused queue and falls back to the
// worker's other queues when the acked scene's queue has nothing.
TEST_F(QueueTest, AckAndLeaseFollowsTheWorkersQueueOrder) {
  queue::QueueOptions o;
  o.name = "urgent";
  queue::Queue urgent(client_, o, clock_);
  ASSERT_TRUE(queue_.Enqueue({MakeScene("s1"), MakeScene("s2"), MakeScene("s3")}).ok());
  auto s1 = MustLease("w1");
  ASSERT_TRUE(urgent.Enqueue({MakeScene("u1")}).ok());
  const std::vector<std::string> order = {"urgent", "scenes"};
  auto r = queue_.AckAndLease(s1, "w1", {}, 30s, "", order);
  ASSERT_TRUE(r.ok() && r->next.has_value()) << r.status().ToString();
  EXPECT_EQ(r->next->queue, "urgent");
  EXPECT_EQ(r->next->id, "u1");
  EXPECT_EQ(client_.Command({"HGET", "sf:{urgent}:scene:u1", "state"})->AsString(), "leased");
  // urgent is empty now: its ack falls back to scenes.
  auto u = urgent.AckAndLease(*r->next, "w1", {}, 30s, "", order);
  ASSERT_TRUE(u.ok() && u->next.has_value()) << u.status().ToString();
  EXPECT_EQ(u->next->queue, "scenes");
  EXPECT_EQ(u->next->id, "s2");
  // A paused queue is skipped and reported.
  ASSERT_TRUE(urgent.Enqueue({MakeScene("u2")}).ok());
  ASSERT_TRUE(*urgent.Pause("t"));
  auto p = queue_.AckAndLease(*u->next, "w1", {}, 30s, "keep", order);
  ASSERT_TRUE(p.ok() && p->next.has_value());
  EXPECT_EQ(p->next->id, "s3");
  EXPECT_EQ(p->looked_at,
            (std::vector<std::pair<std::string, bool>>{{"urgent", true}, {"scenes", false}}));
  // next_scene: the worker renders a scene it already holds next; the busy mark says so.
  EXPECT_EQ(client_.Command({"HGET", "sf:worker:w1", "scene"})->AsString(), "keep");
  // No queues: an ack only.
  auto none = queue_.AckAndLease(*p->next, "w1", {}, 30s, "", {});
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->next.has_value());
  EXPECT_EQ(urgent.Show("u2")->state, "pending");
}

// Lease (and an ack+lease that leases nothing) says when the first delayed scene is due, so an
// idle worker blocks no longer than that.
TEST_F(QueueTest, NothingToLeaseSaysWhenTheFirstDelayedSceneIsDue) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("d", 0, 2), MakeScene("e")}).ok());
  auto d = MustLease("w1");
  auto e = MustLease("w1");
  ASSERT_EQ(*queue_.Fail(d, "w1", "boom", false, 7000ms), "delayed");
  auto r = queue_.AckAndLease(e, "w1", {}, 30s, "", {"scenes"});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->next.has_value());
  EXPECT_EQ(r->next_due_ms, 7000);
  clock_.AdvanceMs(3000);
  int64_t due = 0;
  bool paused = true;
  auto l = queue_.Lease("w1", 30s, &paused, &due);
  ASSERT_TRUE(l.ok());
  EXPECT_FALSE(l->has_value());
  EXPECT_FALSE(paused);
  EXPECT_EQ(due, 4000);
  clock_.AdvanceMs(4000);
  l = queue_.Lease("w1", 30s, &paused, &due);
  ASSERT_TRUE(l.ok() && l->has_value());
  EXPECT_EQ((*l)->id, "d");
  ASSERT_TRUE(queue_.Ack(**l, "w1", {}).ok());
  l = queue_.Lease("w1", 30s, &paused, &due);
  EXPECT_EQ(due, -1);
}

// Issue #14 P7: whatever makes a scene leasable pushes the queue's wake token (never more than
// one); a lease that leaves scenes pending passes it on; cancel does not wake.
TEST_F(QueueTest, EveryWayASceneBecomesLeasablePushesOneWakeToken) {
  const std::string wake = "sf:{scenes}:wake";
  auto len = [&] { return client_.Command({"LLEN", wake})->integer; };
  auto take = [&] { return client_.Command({"LPOP", wake})->AsString() == "1"; };
  std::vector<Scene> many;
  for (int i = 0; i < 1200; ++i)
    many.push_back(MakeScene("m" + std::to_string(i), 0, 0));
  ASSERT_TRUE(queue_.Enqueue(many).ok());  // several script calls
  EXPECT_EQ(len(), 1);
  ASSERT_TRUE(take());
  auto s = MustLease("w1");  // scenes stay pending: the wake is passed on
  EXPECT_EQ(len(), 1);
  ASSERT_TRUE(take());
  ASSERT_TRUE(queue_.Release(s, "w1", "drain").ok());
  EXPECT_EQ(len(), 1);
  ASSERT_TRUE(take());
  s = MustLease("w1");
  ASSERT_TRUE(take());
  ASSERT_EQ(*queue_.Fail(s, "w1", "boom", true, 0ms), "dead");
  EXPECT_EQ(len(), 0);  // dead: nothing to lease
  ASSERT_TRUE(queue_.Retry(s.id).ok());
  ASSERT_TRUE(take());
  ASSERT_EQ(*queue_.Cancel("m5"), "pending");
  EXPECT_EQ(len(), 0);  // cancel wakes nobody
  ASSERT_TRUE(*queue_.Pause("t"));
  EXPECT_EQ(len(), 0);
  ASSERT_TRUE(*queue_.Resume("t"));
  ASSERT_TRUE(take());
  // An expired lease reclaimed; and a reclaim re-arms a lost token while scenes are pending.
  s = MustLease("w1");
  ASSERT_TRUE(take());
  clock_.AdvanceMs(31000);
  ASSERT_EQ(*queue_.Reclaim(), 1);
  ASSERT_TRUE(take());
  ASSERT_EQ(*queue_.Reclaim(), 0);
  ASSERT_TRUE(take());
  // A rerun of a succeeded scene.
  ASSERT_TRUE(queue_.Enqueue({MakeScene("solo")}).ok());
  queue::QueueOptions o;
  o.name = "other";
  queue::Queue other(client_, o, clock_);
  ASSERT_TRUE(other.Enqueue({MakeScene("x")}).ok());
  auto x = other.Lease("w1", 30s);
  ASSERT_TRUE(x.ok() && x->has_value());
  ASSERT_TRUE(client_.Command({"DEL", "sf:{other}:wake"}).ok());
  ASSERT_TRUE(other.Ack(**x, "w1", {}).ok());
  ASSERT_TRUE(other.Rerun("x", "again").ok());
  EXPECT_EQ(client_.Command({"LLEN", "sf:{other}:wake"})->integer, 1);
  // A failed scene delayed: a woken idle worker learns when it is due.
  ASSERT_TRUE(queue_.Enqueue({MakeScene("budget", 5, 3)}).ok());
  ASSERT_TRUE(client_.Command({"DEL", wake}).ok());
  s = MustLease("w1");
  ASSERT_EQ(s.id, "budget");
  ASSERT_TRUE(client_.Command({"DEL", wake}).ok());
  ASSERT_EQ(*queue_.Fail(s, "w1", "boom", false, 5000ms), "delayed");
  EXPECT_EQ(len(), 1);
}

}  // namespace
}  // namespace scenefarm::testing
