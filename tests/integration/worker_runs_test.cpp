// A worker assembles runs that another transition finished (a reclaim, a cancel), not only the
// run whose last scene it acked itself: against a real redis-server with the FakeRenderer.
#include <fstream>
#include <thread>

#include "fake_renderer.h"
#include "scenefarm/telemetry.h"
#include "support/queue_fixture.h"
#include "worker.h"

namespace scenefarm::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST(WorkerRuns, ARunFinishedByAReclaimIsAssembledByTheNextWorkerToFinishAScene) {
  RedisServer redis;
  TempDir artifacts;
  SystemClock clock;
  redis::Client client(redis.options());
  queue::Queue q(client, {}, clock);
  Scene lost = MakeScene("lost");
  lost.run = "abandoned";
  ASSERT_TRUE(q.Enqueue({lost}).ok());
  // Its worker took it for a moment, was asked to cancel it, and died: the next reclaim
  // cancels it, which finishes the run "abandoned".
  ASSERT_TRUE(q.Lease("ghost", 1ms).ok());
  ASSERT_EQ(*q.Cancel("lost"), "leased");
  telemetry::SceneTelemetry t;
  t.scene_id = "lost";
  t.run = "abandoned";
  t.status = "cancelled";
  fs::create_directories(artifacts.path() / "abandoned" / "lost");
  std::ofstream(artifacts.path() / "abandoned" / "lost" / "telemetry.json") << t.ToJson().dump();
  Scene next = MakeScene("next");
  next.run = "busy";
  next.metadata = {{"fake", {{"ms", 10}}}};
  ASSERT_TRUE(q.Enqueue({next}).ok());

  WorkerOptions o;
  o.redis_url = redis.url();
  o.worker_id = "w-runs";
  o.lease_seconds = 2;
  o.heartbeat_seconds = 0.2;
  o.idle_poll_seconds = 0.02;
  o.artifacts_dir = artifacts.path().string();
  FakeRenderer renderer;
  worker::Worker w(o, renderer, clock);
  std::atomic<bool> stop{false};
  std::thread run([&] { w.Run(stop); });
  const bool assembled =
      WaitFor([&] { return fs::exists(artifacts.path() / "abandoned" / "run-summary.txt"); }, 20s);
  stop = true;
  run.join();
  ASSERT_TRUE(assembled) << "the run finished by the reclaim was never assembled";
  EXPECT_EQ(q.Show("lost")->state, "cancelled");
  EXPECT_EQ(q.Show("next")->state, "succeeded");
  EXPECT_TRUE(q.FinishedRuns()->empty());  // both runs claimed
}

}  // namespace
}  // namespace scenefarm::testing
