// scenefarm-worker's ComfyUI renderer against the ComfyUI test server: prompt ids, output
// prefixes, a 400 dead-letters at once, execution errors and OOM retry.
#include <thread>

#include "comfyui_renderer.h"
#include "support/comfy_harness.h"
#include "support/net.h"
#include "support/queue_fixture.h"
#include "worker.h"

namespace scenefarm::testing {
namespace {

using namespace std::chrono_literals;

class WorkerComfy : public ComfyServerTest {
 protected:
  void SetUp() override {
    ComfyServerTest::SetUp();
    client_ = std::make_unique<redis::Client>(redis_.options());
    queue_ = std::make_unique<queue::Queue>(*client_, queue::QueueOptions{}, clock_);
    options_.redis_url = redis_.url();
    options_.comfyui_url = server_->url();
    options_.worker_id = "w-comfy";
    options_.lease_seconds = 5;
    options_.heartbeat_seconds = 0.5;
    options_.idle_poll_seconds = 0.02;
    options_.scene_history_poll_interval_seconds = 0.05;
    options_.retry_backoff_seconds = 0.01;
  }
  void TearDown() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  void StartWorker() {
    renderer_ = std::make_unique<worker::ComfyUiRenderer>(options_);
    worker_ = std::make_unique<worker::Worker>(options_, *renderer_, clock_);
    thread_ = std::thread([this] { worker_->Run(stop_); });
  }
  Scene ComfyScene(const std::string& id, nlohmann::json workflow, int budget = 1) {
    Scene s = MakeScene(id, 0, budget);
    s.workflow = std::move(workflow);
    return s;
  }
  std::string State(const std::string& id) { return queue_->Show(id)->state; }

  RedisServer redis_;
  SystemClock clock_;
  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<queue::Queue> queue_;
  WorkerOptions options_;
  std::unique_ptr<worker::ComfyUiRenderer> renderer_;
  std::unique_ptr<worker::Worker> worker_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(WorkerComfy, RendersUnderAPerAttemptPrefixAndPromptId) {
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("shot1", SourceWorkflow("ignored/prefix", 3))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return State("shot1") == "succeeded"; }));
  auto info = queue_->Show("shot1");
  EXPECT_EQ(info->result["prompt_id"], "shot1-a1");
  ASSERT_EQ(info->result["outputs"].size(), 3u);
  EXPECT_EQ(info->result["outputs"][0]["subfolder"], "scenefarm/run1/shot1");
  EXPECT_TRUE(std::filesystem::exists(out() / "scenefarm/run1/shot1/a1_00003_.png"));
}

TEST_F(WorkerComfy, RejectedWorkflowIsDeadLetteredAtOnceWithComfyUisReason) {
  nlohmann::json bad = SourceWorkflow("x");
  bad["1"]["inputs"].erase("frames");
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("bad", bad, 3)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return State("bad") == "dead"; }));
  auto info = queue_->Show("bad");
  EXPECT_EQ(info->attempts, 1);
  EXPECT_NE(info->reason.find("required_input_missing"), std::string::npos) << info->reason;
}

TEST_F(WorkerComfy, OutOfMemoryIsRetriedAndSucceeds) {
  ASSERT_EQ(Post("/_test/faults", {{"prompt", {{"error", "oom"}, {"count", 1}}}}).status, 200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("oom", SourceWorkflow("x", 2))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return State("oom") == "succeeded"; }));
  auto info = queue_->Show("oom");
  EXPECT_EQ(info->attempts, 2);
  bool saw_retry = false;
  for (const auto& e : info->history) {
    if (e["event"] == "retried") {
      saw_retry = true;
      EXPECT_NE(e["reason"].get<std::string>().find("torch.OutOfMemoryError"), std::string::npos);
    }
  }
  EXPECT_TRUE(saw_retry);
}

TEST_F(WorkerComfy, MaxWaitInterruptsThePromptAndRetries) {
  options_.scene_max_wait_seconds = 0.5;
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("slow", SourceWorkflow("x", 1000, 50), 0)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return State("slow") == "dead"; }));
  EXPECT_NE(queue_->Show("slow")->reason.find("maxWait"), std::string::npos);
  // The prompt was interrupted in ComfyUI, not left rendering.
  EXPECT_TRUE(WaitFor([&] { return GetJson("/queue")["queue_running"].empty(); }));
  EXPECT_EQ(GetJson("/history/slow-a1")["slow-a1"]["status"]["messages"].back()[0],
            "execution_interrupted");
}

TEST_F(WorkerComfy, ComfyUiDownIsRetriedNotCrashed) {
  options_.comfyui_url = "http://127.0.0.1:" + std::to_string(scenefarm::testing::FreePort());
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("nocomfy", SourceWorkflow("x"), 0)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return State("nocomfy") == "dead"; }));
  EXPECT_NE(queue_->Show("nocomfy")->reason.find("UNAVAILABLE"), std::string::npos);
}

}  // namespace
}  // namespace scenefarm::testing
