// The promise: a scene is never lost and never completed twice, whatever dies when. Several
// worker processes render a few hundred scenes while SIGKILL hits random ones; afterwards the
// event stream shows exactly one success per scene and nothing is left leased.
#include <map>
#include <random>

#include "scenefarm/keys.h"
#include "support/queue_fixture.h"

namespace scenefarm::testing {
namespace {

using namespace std::chrono_literals;

class CrashRecovery : public ::testing::Test {
 protected:
  std::unique_ptr<Process> StartWorker(const std::string& id) {
    return std::make_unique<Process>(
        std::vector<std::string>{SCENEFARM_TEST_WORKER_BIN, "--redis-url", redis_.url(),
                                 "--worker-id", id, "--lease-seconds", "1", "--heartbeat-seconds",
                                 "0.25", "--idle-poll-seconds", "0.02", "--log-level", "info"},
        dir_.path() / (id + ".log"));
  }

  RedisServer redis_;
  TempDir dir_;
};

TEST_F(CrashRecovery, SigkilledWorkersLoseNoSceneAndCompleteNoneTwice) {
  constexpr int kScenes = 300;
  redis::Client client(redis_.options());
  SystemClock clock;
  queue::Queue q(client, {}, clock);
  std::vector<Scene> scenes;
  std::mt19937 rng(7);
  for (int i = 0; i < kScenes; ++i) {
    Scene s = MakeScene("scene-" + std::to_string(i));
    // 20-120 ms each: the work outlasts most of the chaos below, so kills land mid-render.
    s.metadata = {{"fake", {{"ms", 20 + static_cast<int>(rng() % 100)}}}};
    scenes.push_back(s);
  }
  ASSERT_TRUE(q.Enqueue(scenes).ok());

  std::vector<std::unique_ptr<Process>> workers;
  std::vector<std::string> ids;  // each slot's worker id now
  for (int i = 0; i < 4; ++i) {
    ids.push_back("w" + std::to_string(i));
    workers.push_back(StartWorker(ids.back()));
  }
  auto all_done = [&] { return q.GetStatus(30s)->outcomes["succeeded"] == kScenes; };
  int kills = 0;
  // Chaos for a bounded number of rounds: a random worker is SIGKILLed while it holds a scene
  // it leased in this life (mid-render: a condition, not a moment in time), then restarted,
  // half the time under its old id (it resumes its leases) and half under a new one (they are
  // reclaimed).
  for (int round = 0; round < 30 && !all_done(); ++round) {
    const size_t victim = rng() % workers.size();
    const bool holding = WaitFor([&] {
      if (all_done()) return true;
      auto held = client.Command({"SCARD", keys::QueueKeys("scenes").WorkerLeases(ids[victim])});
      return held.ok() && held->integer > 0 &&
             workers[victim]->Log().find("\"scene_leased\"") != std::string::npos;
    });
    if (!holding || all_done()) break;
    workers[victim]->Kill();
    ++kills;
    ids[victim] = rng() % 2 ? "w" + std::to_string(victim) : "w-new-" + std::to_string(round);
    workers[victim] = StartWorker(ids[victim]);
  }
  ASSERT_TRUE(WaitFor([&] { return q.GetStatus(30s)->outcomes["succeeded"] == kScenes; }, 90s))
      << "succeeded " << q.GetStatus(30s)->outcomes["succeeded"];
  for (auto& w : workers) {
    // A worker restarted a moment ago may not have installed its SIGTERM handler yet.
    ASSERT_TRUE(WaitFor([&] { return w->Log().find("worker_started") != std::string::npos; }));
    const pid_t pid = w->pid();
    const int status = w->Stop();
    const std::string log = w->Log();
    EXPECT_EQ(status, 0) << "pid " << pid << ", log of " << log.size() << " bytes ends: "
                         << log.substr(log.size() > 1500 ? log.size() - 1500 : 0);
  }

  auto events = client.Command({"XRANGE", "sf:{scenes}:events", "-", "+"});
  ASSERT_TRUE(events.ok());
  std::map<std::string, int> successes;
  int reclaimed = 0;
  for (const auto& e : events->elements) {
    std::map<std::string, std::string> f;
    const auto& kv = e.elements[1].elements;
    for (size_t i = 0; i + 1 < kv.size(); i += 2)
      f[kv[i].str] = kv[i + 1].str;
    if (f["event"] == "succeeded") successes[f["scene"]]++;
    if (f["event"] == "reclaimed" || f["event"] == "resumed") reclaimed++;
  }
  EXPECT_EQ(successes.size(), static_cast<size_t>(kScenes));
  for (const auto& [id, n] : successes)
    EXPECT_EQ(n, 1) << id;
  auto st = q.GetStatus(30s);
  EXPECT_EQ(st->depth.leased, 0);
  EXPECT_EQ(st->depth.pending, 0);
  EXPECT_EQ(st->depth.dead, 0);
  EXPECT_GT(reclaimed, 0) << "the kills hit no scene in flight: the test proved nothing";
  RecordProperty("kills", kills);
  RecordProperty("reclaimed_or_resumed", reclaimed);
}

}  // namespace
}  // namespace scenefarm::testing
