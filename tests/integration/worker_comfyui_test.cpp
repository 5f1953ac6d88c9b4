// scenefarm-worker's ComfyUI renderer against the ComfyUI test server and a real redis-server:
// prompt ids and prefixes, the WebSocket / history race and each HistoryExitReason, the done
// marker and the forced copy, frames and telemetry.json, every fault of the test server,
// takeover, caching, /view fetching, and the run's artifacts passing the validator.
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include <gmock/gmock.h>

#include "comfyui_renderer.h"
#include "scenefarm/telemetry.h"
#include "support/comfy_harness.h"
#include "support/net.h"
#include "support/queue_fixture.h"
#include "support/stall_proxy.h"
#include "worker.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class WorkerComfy : public ComfyServerTest {
 protected:
  void SetUp() override {
    ComfyServerTest::SetUp();
    client_ = std::make_unique<redis::Client>(redis_.options());
    queue_ = std::make_unique<queue::Queue>(*client_, queue::QueueOptions{}, clock_);
    options_.redis_url = redis_.url();
    options_.comfyui_url = server_->url();
    options_.comfyui_output_dir = out().string();
    options_.artifacts_dir = (dir_.path() / "artifacts").string();
    options_.worker_id = "w-comfy";
    options_.lease_seconds = 5;
    options_.heartbeat_seconds = 0.5;
    options_.idle_poll_seconds = 0.02;
    options_.scene_history_poll_interval_seconds = 0.05;
    options_.scene_post_execution_timeout_seconds = 5;
    options_.retry_backoff_seconds = 0;  // due at once: the fake clock does not move by itself
    options_.done_marker_wait_seconds = 5;
    options_.stability_window_seconds = 0.1;
    options_.comfyui_unreachable_seconds = 5;
  }
  void TearDown() override { StopWorker(); }
  void StartWorker() {
    stop_ = false;
    renderer_ = std::make_unique<worker::ComfyUiRenderer>(options_);
    worker_ = std::make_unique<worker::Worker>(options_, *renderer_, clock_);
    thread_ = std::thread([this] { worker_->Run(stop_); });
  }
  void StopWorker() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  Scene ComfyScene(const std::string& id, nlohmann::json workflow, int budget = 1) {
    Scene s = MakeScene(id, 0, budget);
    s.workflow = std::move(workflow);
    return s;
  }
  std::string State(const std::string& id) { return queue_->Show(id)->state; }
  bool WaitState(const std::string& id, const std::string& state,
                 std::chrono::milliseconds timeout = 15000ms) {
    return WaitFor([&] { return State(id) == state; }, timeout);
  }
  fs::path SceneDir(const std::string& id) const {
    return fs::path(options_.artifacts_dir) / "run1" / id;
  }
  json Telemetry(const std::string& id) {
    return json::parse(ReadFile(SceneDir(id) / "telemetry.json"), nullptr, false);
  }
  std::string Stat(const std::string& field) {
    auto r = client_->Command({"HGET", "sf:{scenes}:stats", field});
    return r.ok() ? r->AsString() : "";
  }
  bool HasNote(const json& doc, const std::string& part) {
    for (const auto& n : doc["Telemetry"]["System"]["FallbackNotes"]) {
      if (n.get<std::string>().find(part) != std::string::npos) return true;
    }
    return false;
  }
  // The scene's lease deadline (ms) in Redis; 0 when it is not leased.
  double LeaseDeadline(const std::string& id) {
    auto r = client_->Command({"ZSCORE", "sf:{scenes}:leased", id});
    return r.ok() && !r->AsString().empty() ? std::stod(r->AsString()) : 0;
  }
  int Requests(const std::string& route) {
    return GetJson("/_test/stats")["requests"].value(route, 0);
  }
  // A ComfyUI URL where nothing listens, waited for far longer than the lease.
  void ComfyUiUnreachableForLong() {
    options_.comfyui_url = "http://127.0.0.1:" + std::to_string(FreePort());
    options_.lease_seconds = 1;
    options_.heartbeat_seconds = 0.1;
    options_.comfyui_unreachable_seconds = 120;
  }
  // The worker's hash: "1" while its ComfyUI is down and it leases nothing.
  std::string ComfyUiDown() {
    auto r = client_->Command({"HGET", queue::WorkerKey(options_.worker_id), "comfyui_down"});
    return r.ok() ? r->AsString() : "";
  }
  int Executed(const std::string& class_type) {
    return GetJson("/_test/stats")["nodes_executed_by_class"].value(class_type, 0);
  }

  RedisServer redis_;
  // The queue's time: leases expire only when a test moves it, however slow the machine is.
  FakeClock clock_;
  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<queue::Queue> queue_;
  WorkerOptions options_;
  std::unique_ptr<worker::ComfyUiRenderer> renderer_;
  std::unique_ptr<worker::Worker> worker_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(WorkerComfy, RendersWithTheDoneMarkerAndWritesTheWholeContract) {
  Scene s = ComfyScene("shot1", SourceWorkflow("ignored/prefix", 3));
  s.expected_frames = 3;
  ASSERT_TRUE(queue_->Enqueue({s}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("shot1", "succeeded"));
  auto info = queue_->Show("shot1");
  EXPECT_EQ(info->result["prompt_id"], "shot1-a1");
  ASSERT_EQ(info->result["outputs"].size(), 3u);
  EXPECT_EQ(info->result["outputs"][0]["subfolder"], "scenefarm/run1/shot1");
  const fs::path src = out() / "scenefarm/run1/shot1/a1_00003_.png";
  ASSERT_TRUE(fs::exists(src));
  EXPECT_TRUE(fs::exists(out() / "scenefarm/run1/shot1/a1.done"));
  // Hard-linked into the artifacts layout: the same inode.
  struct stat a {
  }, b{};
  ASSERT_EQ(stat(src.c_str(), &a), 0);
  ASSERT_EQ(stat((SceneDir("shot1") / "a1_00003_.png").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);

  json doc = Telemetry("shot1");
  const json& t = doc["Telemetry"];
  EXPECT_EQ(doc["SceneId"], "shot1");
  EXPECT_EQ(doc["Status"], "succeeded");
  EXPECT_EQ(t["HistoryExitReason"], "success");
  EXPECT_EQ(t["ExecutionSuccessDetected"], true);
  EXPECT_TRUE(t["ExecutionSuccessAt"].is_string());
  EXPECT_EQ(t["DoneMarkerDetected"], true);
  EXPECT_EQ(t["ForcedCopyTriggered"], false);
  EXPECT_EQ(t["FrameCount"], 3);
  EXPECT_EQ(t["pollLimit"], "unbounded");
  EXPECT_EQ(t["SceneRetryBudget"], 1);
  EXPECT_EQ(t["GPU"]["Name"], "NVIDIA GeForce RTX 3090");
  ASSERT_TRUE(t["GPU"]["VramBeforeMB"].is_number());
  ASSERT_TRUE(t["GPU"]["VramAfterMB"].is_number());
  // The model stays loaded after the first render: less VRAM free afterwards.
  EXPECT_LT(t["GPU"]["VramDeltaMB"].get<double>(), 0);
  EXPECT_TRUE(t["System"]["FallbackNotes"].empty()) << t.dump();
  EXPECT_GE(t["HistoryAttempts"].get<int>(), 1);

  // The run's only scene is done: the worker assembled the run and it validates.
  const fs::path run = fs::path(options_.artifacts_dir) / "run1";
  ASSERT_TRUE(WaitFor([&] { return fs::exists(run / "run-summary.txt"); }));
  EXPECT_THAT(telemetry::ValidateRun(run), ::testing::IsEmpty());
  const std::string summary = ReadFile(run / "run-summary.txt");
  EXPECT_NE(summary.find("Queue policy: SceneRetryBudget=1"), std::string::npos) << summary;
  EXPECT_NE(summary.find("[Scene shot1] Telemetry: DurationSeconds="), std::string::npos);
  // Counters and histograms for the exporter.
  EXPECT_EQ(Stat("completion_done_marker"), "1");
  EXPECT_EQ(Stat("exit_success"), "1");
  EXPECT_EQ(Stat("frames"), "3");
  auto frames = client_->Command({"HGET", "sf:{scenes}:h:frames", "5"});
  EXPECT_EQ(frames->AsString(), "1");
}

TEST_F(WorkerComfy, WithoutTheMarkerNodeTheFramesAreForceCopiedOnceStable) {
  testing::comfy::ServerOptions so;
  so.done_marker_node = false;
  StartServer(so);
  options_.comfyui_url = server_->url();
  options_.comfyui_output_dir = out().string();
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("nomark", SourceWorkflow("x", 2))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("nomark", "succeeded"));
  json doc = Telemetry("nomark");
  EXPECT_EQ(doc["Telemetry"]["DoneMarkerDetected"], false);
  EXPECT_EQ(doc["Telemetry"]["ForcedCopyTriggered"], true);
  EXPECT_EQ(doc["Telemetry"]["FrameCount"], 2);
  EXPECT_TRUE(HasNote(doc, "Forced copy after stability retries"));
  EXPECT_TRUE(HasNote(doc, "done-marker node not installed"));
  std::string debug;
  for (const auto& e : fs::directory_iterator(SceneDir("nomark"))) {
    if (e.path().filename().string().rfind("forced-copy-debug-", 0) == 0)
      debug = ReadFile(e.path());
  }
  EXPECT_NE(debug.find("candidate dir: " + (out() / "scenefarm/run1/nomark").string()),
            std::string::npos)
      << debug;
  EXPECT_NE(debug.find("file count: 2"), std::string::npos);
  EXPECT_NE(debug.find("last write time: 20"), std::string::npos);
  ASSERT_TRUE(WaitFor([&] { return Stat("completion_forced_copy") == "1"; }));
  EXPECT_EQ(Stat("fallback_forced_copy"), "1");
  EXPECT_EQ(Stat("fallback_done_marker_node_missing"), "1");
  ASSERT_TRUE(WaitFor(
      [&] { return fs::exists(fs::path(options_.artifacts_dir) / "run1" / "run-summary.txt"); }));
  EXPECT_THAT(telemetry::ValidateRun(fs::path(options_.artifacts_dir) / "run1"),
              ::testing::IsEmpty());
}

TEST_F(WorkerComfy, AMarkerThatNeverComesFallsBackToForcedCopyAndCleansOrphans) {
  options_.done_marker_wait_seconds = 0.3;
  ASSERT_EQ(Post("/_test/faults", {{"prompt", {{"done_marker", "never"}, {"count", 1}}}}).status,
            200);
  // A producer that died between write and rename left this behind.
  fs::create_directories(out() / "scenefarm/run1/late");
  std::ofstream(out() / "scenefarm/run1/late/a1.done.tmp") << "{";
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("late", SourceWorkflow("x", 2))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("late", "succeeded"));
  json doc = Telemetry("late");
  EXPECT_EQ(doc["Telemetry"]["DoneMarkerDetected"], false);
  EXPECT_EQ(doc["Telemetry"]["ForcedCopyTriggered"], true);
  EXPECT_GE(doc["Telemetry"]["DoneMarkerWaitSeconds"].get<double>(), 0.29);
  EXPECT_TRUE(HasNote(doc, "done marker not seen within"));
  EXPECT_TRUE(HasNote(doc, "orphaned .done.tmp"));
  EXPECT_FALSE(fs::exists(out() / "scenefarm/run1/late/a1.done.tmp"));
}

TEST_F(WorkerComfy, ALateMarkerIsWaitedForWithInotify) {
  ASSERT_EQ(
      Post("/_test/faults", {{"prompt", {{"done_marker_delay_ms", 600}, {"count", 1}}}}).status,
      200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("slowmark", SourceWorkflow("x", 1))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("slowmark", "succeeded"));
  json t = Telemetry("slowmark")["Telemetry"];
  EXPECT_EQ(t["DoneMarkerDetected"], true);
  EXPECT_EQ(t["ForcedCopyTriggered"], false);
  EXPECT_GE(t["DoneMarkerWaitSeconds"].get<double>(), 0.4);
  EXPECT_LT(t["DoneMarkerWaitSeconds"].get<double>(), 4.0);
}

TEST_F(WorkerComfy, SlowWritesAreCopiedWholeAfterTheStabilityWindow) {
  options_.done_marker_wait_seconds = 0.1;
  options_.stability_window_seconds = 0.4;
  ASSERT_EQ(Post("/_test/faults",
                 {{"prompt", {{"slow_write_ms", 400}, {"done_marker", "never"}, {"count", 1}}}})
                .status,
            200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("slowwrite", SourceWorkflow("x", 2))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("slowwrite", "succeeded"));
  EXPECT_EQ(Telemetry("slowwrite")["Telemetry"]["FrameCount"], 2);
  for (const auto& e : fs::directory_iterator(SceneDir("slowwrite"))) {
    if (e.path().extension() == ".png") {
      const std::string bytes = ReadFile(e.path());
      EXPECT_EQ(bytes.substr(bytes.size() - 8, 4), "IEND") << e.path();
    }
  }
}

TEST_F(WorkerComfy, ATruncatedFrameFailsTheAttemptAndTheRetrySucceeds) {
  ASSERT_EQ(Post("/_test/faults", {{"prompt", {{"partial_write", true}, {"count", 1}}}}).status,
            200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("trunc", SourceWorkflow("x", 2))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("trunc", "succeeded"));
  auto info = queue_->Show("trunc");
  EXPECT_EQ(info->attempts, 2);
  bool saw = false;
  for (const auto& e : info->history) {
    if (e["event"] == "retried")
      saw = e["reason"].get<std::string>().find("truncated") != std::string::npos;
  }
  EXPECT_TRUE(saw);
  // Only the good attempt's frames are in the artifacts.
  EXPECT_EQ(Telemetry("trunc")["Telemetry"]["FrameCount"], 2);
  EXPECT_TRUE(fs::exists(SceneDir("trunc") / "a2_00002_.png"));
  EXPECT_FALSE(fs::exists(SceneDir("trunc") / "a1_00001_.png"));
}

TEST_F(WorkerComfy, ADroppedWebSocketFallsBackToPollingAndReconnects) {
  options_.scene_history_poll_interval_seconds = 0.3;
  ASSERT_EQ(Post("/_test/faults", {{"prompt", {{"ws_drop_after_events", 2}, {"count", 1}}}}).status,
            200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("drop", SourceWorkflow("x", 4, 100))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("drop", "succeeded"));
  EXPECT_EQ(Telemetry("drop")["Telemetry"]["HistoryExitReason"], "success");
  // The next scene is followed over a new socket.
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("after", SourceWorkflow("y", 1))}).ok());
  ASSERT_TRUE(WaitState("after", "succeeded"));
  EXPECT_GE(GetJson("/_test/stats")["ws_connections_total"].get<int>(), 2);
}

TEST_F(WorkerComfy, PollingOnlyModeStillRendersAndCountsItsPolls) {
  options_.comfyui_websocket = false;
  options_.scene_history_poll_interval_seconds = 0.1;
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("poll", SourceWorkflow("x", 3, 100))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("poll", "succeeded"));
  json t = Telemetry("poll")["Telemetry"];
  EXPECT_EQ(t["HistoryExitReason"], "success");
  EXPECT_GE(t["HistoryAttempts"].get<int>(), 3);
  EXPECT_EQ(GetJson("/_test/stats")["ws_connections_total"].get<int>(), 0);
}

TEST_F(WorkerComfy, AHistoryEntryThatNeverComesEndsInPostExecution) {
  options_.scene_post_execution_timeout_seconds = 0.3;
  ASSERT_EQ(Post("/_test/faults", {{"prompt", {{"history_delay_ms", 3000}, {"count", 1}}}}).status,
            200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("postexec", SourceWorkflow("x", 2))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("postexec", "succeeded"));
  json t = Telemetry("postexec")["Telemetry"];
  EXPECT_EQ(t["HistoryExitReason"], "postExecution");
  EXPECT_EQ(t["HistoryPostExecutionTimeoutReached"], true);
  EXPECT_EQ(t["ExecutionSuccessDetected"], false);
  EXPECT_TRUE(t["ExecutionSuccessAt"].is_string());  // from the execution_success event
  EXPECT_EQ(t["FrameCount"], 2);                     // found by prefix, completed by the marker
  EXPECT_EQ(t["DoneMarkerDetected"], true);
}

TEST_F(WorkerComfy, MaxWaitInterruptsThePromptAndRecordsTheReason) {
  options_.scene_max_wait_seconds = 0.5;
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("slow", SourceWorkflow("x", 1000, 50), 0)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("slow", "dead"));
  EXPECT_NE(queue_->Show("slow")->reason.find("maxWait"), std::string::npos);
  EXPECT_TRUE(WaitFor([&] { return GetJson("/queue")["queue_running"].empty(); }));
  EXPECT_EQ(GetJson("/history/slow-a1")["slow-a1"]["status"]["messages"].back()[0],
            "execution_interrupted");
  json doc = Telemetry("slow");
  EXPECT_EQ(doc["Status"], "failed");
  EXPECT_EQ(doc["Telemetry"]["HistoryExitReason"], "maxWait");
  EXPECT_EQ(Stat("exit_maxWait"), "1");
}

TEST_F(WorkerComfy, AttemptLimitEndsPollingAfterThatManyPolls) {
  options_.scene_history_max_attempts = 3;
  options_.scene_history_poll_interval_seconds = 0.1;
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("limited", SourceWorkflow("x", 1000, 50), 0)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("limited", "dead"));
  json t = Telemetry("limited")["Telemetry"];
  EXPECT_EQ(t["HistoryExitReason"], "attemptLimit");
  EXPECT_EQ(t["HistoryAttempts"], 3);
  EXPECT_EQ(t["HistoryAttemptLimit"], 3);
  EXPECT_EQ(t["pollLimit"], "3");
  EXPECT_TRUE(WaitFor([&] { return GetJson("/queue")["queue_running"].empty(); }));
}

TEST_F(WorkerComfy, RejectedWorkflowIsDeadLetteredAtOnceWithComfyUisReason) {
  nlohmann::json bad = SourceWorkflow("x");
  bad["1"]["inputs"].erase("frames");
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("bad", bad, 3)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("bad", "dead"));
  auto info = queue_->Show("bad");
  EXPECT_EQ(info->attempts, 1);
  EXPECT_NE(info->reason.find("required_input_missing"), std::string::npos) << info->reason;
  json doc = Telemetry("bad");
  EXPECT_EQ(doc["Status"], "failed");
  EXPECT_NE(doc["Error"].get<std::string>().find("node_errors"), std::string::npos);
  // The run (one scene, dead) is complete and its artifacts still hold the contract.
  const fs::path run = fs::path(options_.artifacts_dir) / "run1";
  ASSERT_TRUE(WaitFor([&] { return fs::exists(run / "run-summary.txt"); }));
  EXPECT_THAT(telemetry::ValidateRun(run), ::testing::IsEmpty());
}

TEST_F(WorkerComfy, OutOfMemoryFreesComfyUiAndIsRetried) {
  ASSERT_EQ(Post("/_test/faults", {{"prompt", {{"error", "oom"}, {"count", 1}}}}).status, 200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("oom", SourceWorkflow("x", 2))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("oom", "succeeded"));
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
  EXPECT_GE(GetJson("/_test/stats")["requests"].value("POST /free", 0), 1);
  EXPECT_EQ(Stat("fallback_gpu_memory_pressure"), "1");  // counted from the failed attempt
}

TEST_F(WorkerComfy, AnExecutionErrorSpendsTheBudgetThenDeadLetters) {
  ASSERT_EQ(Post("/_test/faults", {{"prompt", {{"error", "runtime"}, {"count", 0}}}}).status, 200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("err", SourceWorkflow("x", 1), 1)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("err", "dead"));
  EXPECT_EQ(queue_->Show("err")->attempts, 2);
  EXPECT_NE(queue_->Show("err")->reason.find("RuntimeError"), std::string::npos);
}

TEST_F(WorkerComfy, ComfyUi500sOnSubmitAreWaitedOutWithoutSpendingTheBudget) {
  ASSERT_EQ(
      Post("/_test/faults",
           {{"http", {{{"method", "POST"}, {"path", "/prompt"}, {"status", 500}, {"count", 2}}}}})
          .status,
      200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("flaky", SourceWorkflow("x", 1), 0)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("flaky", "succeeded"));
  EXPECT_EQ(queue_->Show("flaky")->attempts, 1);
}

TEST_F(WorkerComfy, ASlowHistoryAnswerIsWaitedFor) {
  ASSERT_EQ(Post("/_test/faults", {{"http",
                                    {{{"method", "GET"},
                                      {"path", "/history/hang-a1"},
                                      {"status", 0},
                                      {"delay_ms", 800},
                                      {"count", 1}}}}})
                .status,
            200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("hang", SourceWorkflow("x", 1))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("hang", "succeeded"));
  EXPECT_EQ(queue_->Show("hang")->attempts, 1);
}

TEST_F(WorkerComfy, ComfyUiRestartingMidSceneLosesThePromptAndItIsResubmitted) {
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("restart", SourceWorkflow("x", 30, 50), 0)}).ok());
  StartWorker();
  // Restarted while the prompt runs and the worker already waits for it (it has looked at
  // /history once), so the restart loses a prompt the worker holds.
  ASSERT_TRUE(WaitFor([&] {
    return !GetJson("/queue")["queue_running"].empty() && Requests("GET /history/{id}") >= 1;
  }));
  ASSERT_EQ(Post("/_test/restart", {{"down_ms", 500}}).status, 200);
  ASSERT_TRUE(WaitState("restart", "succeeded", 30000ms));
  EXPECT_EQ(queue_->Show("restart")->attempts, 1);  // budget 0, not spent on the restart
  json doc = Telemetry("restart");
  EXPECT_TRUE(HasNote(doc, "ComfyUI lost the prompt")) << doc.dump();
  EXPECT_EQ(doc["Telemetry"]["FrameCount"], 30);
}

// The restarted ComfyUI refuses the resubmission once (a 5xx, or the port still closed: the
// race CI's TSan run hit, the restart landing between the worker's /queue look and its POST).
// That is the outage, not the scene's failure: the worker waits on and resubmits at its next
// look, without spending the budget (0 here: a failure would dead-letter it).
TEST_F(WorkerComfy, AResubmissionRefusedByARestartingComfyUiIsTriedAgainNotAFailure) {
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("refused", SourceWorkflow("x", 30, 50), 0)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] {
    return !GetJson("/queue")["queue_running"].empty() && Requests("GET /history/{id}") >= 1;
  }));
  ASSERT_EQ(
      Post("/_test/faults",
           {{"http",
             json::array(
                 {{{"method", "POST"}, {"path", "/prompt"}, {"status", 503}, {"count", 1}}})}})
          .status,
      200);
  ASSERT_EQ(Post("/_test/restart", {{"down_ms", 0}}).status, 200);
  ASSERT_TRUE(WaitState("refused", "succeeded", 30000ms));
  EXPECT_EQ(queue_->Show("refused")->attempts, 1);
  EXPECT_EQ(Requests("POST /prompt"), 3);  // the first, the refused one, the one that ran
  json doc = Telemetry("refused");
  EXPECT_TRUE(HasNote(doc, "ComfyUI lost the prompt")) << doc.dump();
  EXPECT_EQ(doc["Telemetry"]["FrameCount"], 30);
}

TEST_F(WorkerComfy, ASceneWaitingForAnUnreachableComfyUiKeepsItsLease) {
  ComfyUiUnreachableForLong();
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("waiting", SourceWorkflow("x"), 0)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("waiting", "leased"));
  // Submit waits 120 s against a 1 s lease: only a renewal moves the deadline on as time passes.
  const double first = LeaseDeadline("waiting");
  ASSERT_GT(first, 0);
  clock_.AdvanceMs(500);
  ASSERT_TRUE(WaitFor([&] { return LeaseDeadline("waiting") > first; }));
  auto info = queue_->Show("waiting");
  EXPECT_EQ(info->state, "leased");
  EXPECT_EQ(info->attempts, 1);
}

TEST_F(WorkerComfy, ScenesResumedAfterARestartAllKeepTheirLeasesWhileTheFirstWaits) {
  // A worker restarted with two scenes leased under its id: the first waits 120 s for an
  // unreachable ComfyUI; the second, not yet submitted, must not expire meanwhile.
  ComfyUiUnreachableForLong();
  ASSERT_TRUE(queue_
                  ->Enqueue({ComfyScene("resumed1", SourceWorkflow("x"), 0),
                             ComfyScene("resumed2", SourceWorkflow("y"), 0)})
                  .ok());
  for (int i = 0; i < 2; ++i) {
    auto r = queue_->Lease(options_.worker_id, options_.lease());
    ASSERT_TRUE(r.ok() && r->has_value());
  }
  const double first1 = LeaseDeadline("resumed1"), first2 = LeaseDeadline("resumed2");
  ASSERT_GT(first1, 0);
  ASSERT_GT(first2, 0);
  StartWorker();
  // Resumed (a resume is a new attempt of each), the clock not moved yet; then only a renewal
  // moves a deadline on, and the worker sits in the first scene's Submit.
  ASSERT_TRUE(WaitFor([&] {
    return queue_->Show("resumed1")->attempts == 2 && queue_->Show("resumed2")->attempts == 2;
  }));
  const double then1 = LeaseDeadline("resumed1"), then2 = LeaseDeadline("resumed2");
  clock_.AdvanceMs(500);
  ASSERT_TRUE(WaitFor(
      [&] { return LeaseDeadline("resumed1") > then1 && LeaseDeadline("resumed2") > then2; }));
  EXPECT_EQ(State("resumed1"), "leased");
  EXPECT_EQ(State("resumed2"), "leased");
  EXPECT_EQ(queue_->Show("resumed2")->worker, options_.worker_id);
}

TEST_F(WorkerComfy, AStopDuringTheWaitForComfyUiReleasesTheScene) {
  ComfyUiUnreachableForLong();
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("stopped", SourceWorkflow("x"), 0)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("stopped", "leased"));
  stop_ = true;  // SIGTERM
  // Released long before the 120 s wait would end; its budget (0) untouched.
  ASSERT_TRUE(WaitState("stopped", "pending", 30000ms));
  StopWorker();
  EXPECT_EQ(queue_->Show("stopped")->failures, 0);
}

TEST_F(WorkerComfy, ACancelBeforeSubmissionCancelsTheScene) {
  ComfyUiUnreachableForLong();
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("early", SourceWorkflow("x"), 0)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("early", "leased"));
  ASSERT_TRUE(queue_->Cancel("early").ok());
  ASSERT_TRUE(WaitState("early", "cancelled"));
}

TEST_F(WorkerComfy, AnOutageReleasesTheSceneWithItsBudgetAndPausesLeasingUntilComfyUiAnswers) {
  options_.comfyui_unreachable_seconds = 0.3;
  // ComfyUI answers 500 to every prompt and to the worker's probe (GET /prompt).
  ASSERT_EQ(Post("/_test/faults",
                 {{"http",
                   {{{"method", "POST"}, {"path", "/prompt"}, {"status", 500}, {"count", 0}},
                    {{"method", "GET"}, {"path", "/prompt"}, {"status", 500}, {"count", 0}}}}})
                .status,
            200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("outage", SourceWorkflow("x", 1), 0)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return Requests("GET /prompt") >= 3; }, 30000ms));
  // Back in pending with its budget (0) unspent, and not leased again while the probes fail.
  auto info = queue_->Show("outage");
  EXPECT_EQ(info->state, "pending");
  EXPECT_EQ(info->attempts, 1);
  EXPECT_EQ(info->failures, 0);
  bool released = false;
  for (const auto& e : info->history)
    released = released || (e.value("event", "") == "released" &&
                            e.dump().find("unreachable") != std::string::npos);
  EXPECT_TRUE(released) << info->ToJson().dump();
  // The pause is shown: in the worker's hash, and by scenefarm status in both forms.
  EXPECT_EQ(ComfyUiDown(), "1");
  const std::vector<std::string> base = {"--redis-url", redis_.url(), "status"};
  CliRun st = RunCommand(SCENEFARM_CLI_BIN, {base[0], base[1], base[2], "--json"}, dir_.path());
  ASSERT_EQ(st.code, 0) << st.err;
  const json status = json::parse(st.out);
  json shown = json::object();
  for (const auto& w : status["workers"]["list"]) {
    if (w["id"] == options_.worker_id) shown = w;
  }
  EXPECT_EQ(shown.value("comfyui_down", false), true) << st.out;
  EXPECT_NE(shown.value("comfyui_down_reason", std::string()).find("unreachable"),
            std::string::npos)
      << st.out;
  CliRun human = RunCommand(SCENEFARM_CLI_BIN, base, dir_.path());
  EXPECT_NE(human.out.find("LEASING PAUSED: ComfyUI down for"), std::string::npos) << human.out;
  ASSERT_EQ(Post("/_test/faults", json::object()).status, 200);  // ComfyUI recovers
  ASSERT_TRUE(WaitState("outage", "succeeded"));
  EXPECT_EQ(queue_->Show("outage")->attempts, 2);
  EXPECT_EQ(ComfyUiDown(), "0");  // leasing resumed before the scene could be leased again
}

TEST_F(WorkerComfy, AHungSubmissionIsAnOutageAndTheLateAcceptedPromptIsAdoptedNotRenderedTwice) {
  // ComfyUI accepts the connection for POST /prompt but answers only after the worker's request
  // timeout; it then queues the prompt all the same. Its probe (GET /prompt) fails meanwhile.
  // 2 s: long enough for every other call to the test server on a busy machine.
  options_.comfyui_request_timeout_seconds = 2;
  ASSERT_EQ(Post("/_test/faults",
                 {{"http",
                   {{{"method", "POST"},
                     {"path", "/prompt"},
                     {"status", 0},
                     {"delay_ms", 6000},
                     {"count", 1}},
                    {{"method", "GET"}, {"path", "/prompt"}, {"status", 500}, {"count", 0}}}}})
                .status,
            200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("hung", SourceWorkflow("x", 1), 0)}).ok());
  StartWorker();
  auto released = [&] {
    auto info = queue_->Show("hung");
    for (const auto& e : info->history) {
      if (e.value("event", "") == "released") return true;
    }
    return false;
  };
  ASSERT_TRUE(WaitFor(released, 30000ms));
  auto info = queue_->Show("hung");
  EXPECT_EQ(info->failures, 0);  // budget 0 kept: not dead-lettered
  EXPECT_NE(info->state, "dead");
  // The late answer: attempt 1's prompt rendered in ComfyUI after the worker gave up on it.
  ASSERT_FALSE(WaitHistory("hung-a1", 30000ms).is_null());
  ASSERT_EQ(Post("/_test/faults", json::object()).status, 200);  // the probe answers again
  ASSERT_TRUE(WaitState("hung", "succeeded", 30000ms));
  info = queue_->Show("hung");
  EXPECT_EQ(info->attempts, 2);
  EXPECT_EQ(info->result["prompt_id"], "hung-a1");  // adopted, not submitted again
  EXPECT_EQ(Executed("ScenefarmTestSource"), 1);
}

TEST_F(WorkerComfy, ASceneComfyUiRefusesWhileAnsweringOtherwiseSpendsItsBudget) {
  // Not an outage: ComfyUI answers the worker's probe but answers this scene's prompt with 500s.
  options_.comfyui_unreachable_seconds = 0.3;
  ASSERT_EQ(
      Post("/_test/faults",
           {{"http", {{{"method", "POST"}, {"path", "/prompt"}, {"status", 500}, {"count", 0}}}}})
          .status,
      200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("poison", SourceWorkflow("x", 1), 0)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("poison", "dead"));
  EXPECT_NE(queue_->Show("poison")->reason.find("ComfyUI unreachable"), std::string::npos);
}

TEST_F(WorkerComfy, AMalformedEventIsIgnoredAndTheRenderGoesOn) {
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("odd", SourceWorkflow("x", 20, 50))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return !GetJson("/queue")["queue_running"].empty(); }));
  int sent = 0;
  for (const char* text :
       {R"({"type":"execution_success","data":{"prompt_id":"odd-a1","timestamp":"soon"}})",
        R"({"type":"execution_error","data":{"prompt_id":"odd-a1","exception_type":7}})",
        R"({"type":"executing","data":{"prompt_id":["odd-a1"]}})", R"({"type":1})", "{"}) {
    auto r = Post("/_test/ws/send", {{"client_id", options_.worker_id}, {"text", text}});
    sent += json::parse(r.body, nullptr, false).value("sent", 0);
  }
  EXPECT_EQ(sent, 5);  // every one reached the worker's socket
  ASSERT_TRUE(WaitState("odd", "succeeded"));
  EXPECT_EQ(queue_->Show("odd")->attempts, 1);
  EXPECT_EQ(Telemetry("odd")["Telemetry"]["FrameCount"], 20);
}

TEST_F(WorkerComfy, AMalformedHistoryEntryFailsTheAttemptAndTheRetryRenders) {
  // /history answers for attempt 1 with a status_str that is a number.
  ASSERT_EQ(Post("/_test/faults", {{"http",
                                    {{{"method", "GET"},
                                      {"path", "/history/badh-a1"},
                                      {"status", 200},
                                      {"body", {{"badh-a1", {{"status", {{"status_str", 1}}}}}}},
                                      {"count", 0}}}}})
                .status,
            200);
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("badh", SourceWorkflow("x", 1), 1)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("badh", "succeeded"));
  auto info = queue_->Show("badh");
  EXPECT_EQ(info->attempts, 2);
  bool named = false;
  for (const auto& e : info->history)
    named = named || e.dump().find("status_str") != std::string::npos;
  EXPECT_TRUE(named) << info->ToJson().dump();
}

TEST_F(WorkerComfy, ATakenOverSceneAdoptsTheEarlierAttemptInsteadOfRenderingAgain) {
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("take", SourceWorkflow("x", 2))}).ok());
  // A worker leased it, submitted attempt 1 to ComfyUI and died.
  auto dead = queue_->Lease("dead-worker", 300ms);
  ASSERT_TRUE(dead.ok() && dead->has_value());
  json wf = SourceWorkflow("x", 2);
  worker::RewriteOutputPrefixes(wf, worker::OutputPrefixFor(**dead));
  Submit(wf, "dead-worker", worker::PromptIdFor(**dead));
  ASSERT_FALSE(WaitHistory("take-a1").is_null());
  clock_.AdvanceMs(400);  // its lease expires
  StartWorker();
  ASSERT_TRUE(WaitState("take", "succeeded"));
  auto info = queue_->Show("take");
  EXPECT_EQ(info->attempts, 2);
  EXPECT_EQ(info->result["prompt_id"], "take-a1");
  EXPECT_EQ(Executed("ScenefarmTestSource"), 1);  // rendered once
  json doc = Telemetry("take");
  EXPECT_TRUE(HasNote(doc, "adopted attempt 1")) << doc.dump();
  EXPECT_EQ(doc["Telemetry"]["FrameCount"], 2);
}

// Issue #15 R7 (seen once in the chaos test): a worker cut off from Redis long enough for its
// lease to be taken over finished its render and wrote its frames and telemetry.json over those
// of the attempt that owned the scene by then, which had been acknowledged. The worker now asks
// Redis before it writes (renewing the lease), waits while Redis does not answer, and writes
// nothing once it learns the scene is no longer its own.
TEST_F(WorkerComfy, AWorkerWhoseLeaseWasTakenOverWhileCutOffWritesNoFile) {
  StallProxy proxy(redis_.port());
  options_.redis_url = "redis://127.0.0.1:" + std::to_string(proxy.port()) + "/0";
  // 20 frames of 100 ms: a render long enough to be seen running on a busy machine.
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("stale", SourceWorkflow("x", 20, 100))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitFor([&] { return !GetJson("/queue")["queue_running"].empty(); }));
  proxy.Freeze();  // ComfyUI renders on; the worker no longer reaches Redis
  // Its lease runs out (the queue's clock); another worker takes the scene over and finishes it.
  clock_.AdvanceMs(static_cast<int64_t>(options_.lease_seconds * 1000) + 1000);
  ASSERT_TRUE(queue_->Reclaim().ok());
  auto owner = queue_->Lease("other-worker", 30s);
  ASSERT_TRUE(owner.ok() && owner->has_value());
  ASSERT_EQ((*owner)->attempt, 2);
  fs::create_directories(SceneDir("stale"));
  const std::string theirs = "{\"Attempt\": 2}\n";
  std::ofstream(SceneDir("stale") / "telemetry.json") << theirs;
  ASSERT_TRUE(queue_->Ack(**owner, "other-worker", json::object()).ok());
  // Attempt 1 finishes in ComfyUI while the worker is cut off; then Redis answers it again.
  ASSERT_FALSE(WaitHistory("stale-a1", 30000ms).is_null());
  proxy.Thaw();
  ASSERT_TRUE(WaitFor([&] { return worker_->scenes_finished() >= 1; }, 60000ms));
  EXPECT_EQ(ReadFile(SceneDir("stale") / "telemetry.json"), theirs);
  for (const auto& e : fs::directory_iterator(SceneDir("stale")))
    EXPECT_EQ(e.path().filename(), "telemetry.json") << "attempt 1 wrote " << e.path();
  auto info = queue_->Show("stale");
  EXPECT_EQ(info->state, "succeeded");
  EXPECT_EQ(info->attempts, 2);
  EXPECT_EQ(info->worker, "other-worker");
}

TEST_F(WorkerComfy, IdenticalWorkflowsStillGetTheirOwnFrames) {
  // ComfyUI caches the source node; the per-attempt prefix makes SaveImage run again.
  ASSERT_TRUE(queue_
                  ->Enqueue({ComfyScene("same1", SourceWorkflow("x", 2)),
                             ComfyScene("same2", SourceWorkflow("x", 2))})
                  .ok());
  StartWorker();
  ASSERT_TRUE(WaitState("same1", "succeeded"));
  ASSERT_TRUE(WaitState("same2", "succeeded"));
  EXPECT_EQ(Executed("ScenefarmTestSource"), 1);
  EXPECT_EQ(Telemetry("same2")["Telemetry"]["FrameCount"], 2);
  EXPECT_TRUE(fs::exists(SceneDir("same2") / "a1_00002_.png"));
}

TEST_F(WorkerComfy, WithoutTheOutputDirectoryFramesComeOverView) {
  options_.comfyui_output_dir = "";
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("view", SourceWorkflow("x", 2))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("view", "succeeded"));
  json t = Telemetry("view")["Telemetry"];
  EXPECT_EQ(t["FrameCount"], 2);
  EXPECT_EQ(t["DoneMarkerDetected"], true);
  EXPECT_GE(GetJson("/_test/stats")["requests"].value("GET /view", 0), 3);
  const std::string bytes = ReadFile(SceneDir("view") / "a1_00001_.png");
  EXPECT_EQ(bytes, ReadFile(out() / "scenefarm/run1/view/a1_00001_.png"));
}

TEST_F(WorkerComfy, FewerFramesThanExpectedAreRecordedAndCounted) {
  Scene s = ComfyScene("short", SourceWorkflow("x", 2));
  s.expected_frames = 24;
  ASSERT_TRUE(queue_->Enqueue({s}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("short", "succeeded"));
  json doc = Telemetry("short");
  EXPECT_EQ(doc["Telemetry"]["FrameCount"], 2);
  EXPECT_EQ(doc["ExpectedFrames"], 24);
  EXPECT_TRUE(HasNote(doc, "below expected_frames 24"));
  EXPECT_EQ(Stat("frames_short"), "1");
}

TEST_F(WorkerComfy, ARunOfScenesIsAssembledByTheWorkerThatFinishesTheLast) {
  std::vector<Scene> scenes;
  for (int i = 0; i < 4; ++i)
    scenes.push_back(
        ComfyScene(std::string("r").append(std::to_string(i)), SourceWorkflow("x", 2, 0, i)));
  ASSERT_TRUE(queue_->Enqueue(scenes).ok());
  StartWorker();
  const fs::path run = fs::path(options_.artifacts_dir) / "run1";
  ASSERT_TRUE(WaitFor([&] { return fs::exists(run / "run-summary.txt"); }));
  json meta = json::parse(ReadFile(run / "artifact-metadata.json"));
  EXPECT_EQ(meta["Scenes"].size(), 4u);
  EXPECT_EQ(meta["Totals"]["Frames"], 8);
  EXPECT_EQ(meta["QueuePolicy"]["pollLimit"], "unbounded");
  EXPECT_EQ(Stat("runs_completed"), "1");
  EXPECT_THAT(telemetry::ValidateRun(run), ::testing::IsEmpty());
}

// Source "1" -> SaveImage "2" and Video Combine "3": three output nodes once the worker adds the
// markers (ScenefarmSaveImage "2", ScenefarmVideoDoneMarker "1003" fed by "3").
json ImageAndVideoWorkflow() {
  json w = VideoWorkflow("x", 3);
  w["3"] = w["2"];
  w["2"] = {{"class_type", "SaveImage"},
            {"inputs", {{"images", {"1", 0}}, {"filename_prefix", "x"}}}};
  return w;
}

TEST(DoneMarkers, SaveImageBecomesTheMarkerSaverAndVideoCombineGetsAMarkerNode) {
  json w = ImageAndVideoWorkflow();
  const auto markers = worker::AddDoneMarkers(w, "scenefarm/r/s/a1");
  EXPECT_EQ(markers,
            (std::vector<std::string>{"scenefarm/r/s/a1.2.done", "scenefarm/r/s/a1.3.done"}));
  EXPECT_EQ(w["2"]["class_type"], "ScenefarmSaveImage");
  EXPECT_EQ(w["2"]["inputs"]["images"], json({"1", 0}));
  EXPECT_EQ(w["2"]["inputs"]["done_marker"], "scenefarm/r/s/a1.2.done");
  EXPECT_EQ(w["3"]["class_type"], "VHS_VideoCombine");
  EXPECT_EQ(w["1003"]["class_type"], "ScenefarmVideoDoneMarker");
  EXPECT_EQ(w["1003"]["inputs"]["filenames"], json({"3", 0}));
  // One saver: the marker keeps the plain name.
  json one = SourceWorkflow("x", 1);
  EXPECT_EQ(worker::AddDoneMarkers(one, "p/a1"), (std::vector<std::string>{"p/a1.done"}));
  json none = {{"1", {{"class_type", "EmptyImage"}, {"inputs", json::object()}}}};
  EXPECT_TRUE(worker::AddDoneMarkers(none, "p/a1").empty());
}

// Whatever order the test server runs the output nodes in: each marker comes after its files,
// within the prompt (no wait added after it), and lists them; the video is collected too.
TEST_F(WorkerComfy, MarkersComeAfterTheirFilesInEveryOutputOrder) {
  for (const std::string first : {"2", "3", "1003"}) {
    SCOPED_TRACE("output node run first: " + first);
    StopWorker();
    testing::comfy::ServerOptions so;
    so.output_order_seed = testing::comfy::SeedForOrder({"2", "3", "1003"}, first);
    ASSERT_NE(*so.output_order_seed, 0u);
    StartServer(so);
    options_.comfyui_url = server_->url();
    options_.comfyui_output_dir = out().string();
    const std::string id = "ord" + first;
    ASSERT_TRUE(queue_->Enqueue({ComfyScene(id, ImageAndVideoWorkflow())}).ok());
    StartWorker();
    ASSERT_TRUE(WaitState(id, "succeeded"));
    json doc = Telemetry(id);
    const json& t = doc["Telemetry"];
    EXPECT_EQ(t["DoneMarkerDetected"], true) << doc.dump();
    EXPECT_EQ(t["ForcedCopyTriggered"], false);
    EXPECT_EQ(t["FrameCount"], 3);
    // Video Combine's counter follows whatever the saver wrote before it: its name depends on
    // the order, so it is read from what was collected.
    ASSERT_EQ(doc["Files"].size(), 4u) << doc.dump();
    json frames = json::array(), video;
    for (const auto& f : doc["Files"]) {
      if (f["Kind"] == "image") frames.push_back(f["Name"]);
      if (f["Kind"] == "video") video = f["Name"];
    }
    EXPECT_EQ(frames, json({"a1_00001_.png", "a1_00002_.png", "a1_00003_.png"}));
    ASSERT_TRUE(video.is_string()) << doc.dump();
    EXPECT_EQ(fs::path(video.get<std::string>()).extension(), ".mp4");
    EXPECT_TRUE(fs::exists(SceneDir(id) / video.get<std::string>()));
    const fs::path dir = out() / "scenefarm/run1" / id;
    json history = GetJson("/history/" + id + "-a1")[id + "-a1"];
    int64_t success_ms = 0;
    for (const auto& m : history["status"]["messages"]) {
      if (m[0] == "execution_success") success_ms = m[1]["timestamp"];
    }
    for (const std::string marker : {"a1.2.done", "a1.3.done"}) {
      ASSERT_TRUE(fs::exists(dir / marker)) << marker;
      const json listed = json::parse(ReadFile(dir / marker))["files"];
      if (marker == "a1.2.done") {
        EXPECT_EQ(listed, frames);
      } else {
        ASSERT_EQ(listed.size(), 2u);  // Video Combine's workflow frame and the video
        EXPECT_EQ(listed[1], video);
      }
      for (const auto& f : listed)
        EXPECT_GE(fs::last_write_time(dir / marker),
                  fs::last_write_time(dir / f.get<std::string>()));
      // Written inside the prompt, before ComfyUI called it a success: nothing waited after.
      const auto written = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::file_clock::to_sys(fs::last_write_time(dir / marker)).time_since_epoch());
      EXPECT_LE(written.count(), success_ms) << marker;
    }
  }
  // The run (its last scene done) assembles with the videos and validates; the summary is
  // written after the metadata.
  const fs::path run = fs::path(options_.artifacts_dir) / "run1";
  ASSERT_TRUE(WaitFor([&] {
    const std::string summary = ReadFile(run / "run-summary.txt");
    return summary.find("[Scene ord2]") != std::string::npos &&
           summary.find("[Scene ord3]") != std::string::npos &&
           summary.find("[Scene ord1003]") != std::string::npos;
  }));
  EXPECT_THAT(telemetry::ValidateRun(run), ::testing::IsEmpty());
}

TEST_F(WorkerComfy, AVideoOnlySceneSucceedsWithItsVideo) {
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("vid", VideoWorkflow("x", 4, "image/gif"))}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("vid", "succeeded"));
  json doc = Telemetry("vid");
  EXPECT_EQ(doc["Telemetry"]["FrameCount"], 0);
  EXPECT_EQ(doc["Telemetry"]["DoneMarkerDetected"], true);
  EXPECT_EQ(doc["Files"], json::array({{{"Name", "a1_00001.gif"}, {"Kind", "video"}}}));
  EXPECT_EQ(ReadFile(SceneDir("vid") / "a1_00001.gif").substr(0, 6), "GIF89a");
  EXPECT_EQ(queue_->Show("vid")->result["outputs"][0]["kind"], "video");
  const fs::path run = fs::path(options_.artifacts_dir) / "run1";
  ASSERT_TRUE(WaitFor([&] { return fs::exists(run / "run-summary.txt"); }));
  EXPECT_THAT(telemetry::ValidateRun(run), ::testing::IsEmpty());
}

TEST_F(WorkerComfy, AnAnimatedSaveIsCollectedAndItsUnlistedFileDistrustsTheMarker) {
  // SaveAnimatedWEBP has no output a marker could follow: the SaveImage marker does not list
  // its file, so the worker does not trust the marker and copies both once stable.
  json w = SourceWorkflow("x", 2);
  w["3"] = {{"class_type", "SaveAnimatedWEBP"},
            {"inputs",
             {{"images", {"1", 0}},
              {"filename_prefix", "x"},
              {"fps", 6.0},
              {"lossless", false},
              {"quality", 80},
              {"method", "default"}}}};
  ASSERT_TRUE(queue_->Enqueue({ComfyScene("anim", w)}).ok());
  StartWorker();
  ASSERT_TRUE(WaitState("anim", "succeeded"));
  json doc = Telemetry("anim");
  EXPECT_EQ(doc["Telemetry"]["DoneMarkerDetected"], false);
  EXPECT_EQ(doc["Telemetry"]["ForcedCopyTriggered"], true);
  EXPECT_EQ(doc["Telemetry"]["FrameCount"], 2);
  // The webp's counter depends on which save node ran first: read from what was collected.
  std::string webp;
  for (const auto& f : doc["Files"]) {
    if (f["Kind"] == "video") webp = f["Name"];
  }
  EXPECT_EQ(fs::path(webp).extension(), ".webp") << doc["Files"].dump();
  EXPECT_TRUE(fs::exists(SceneDir("anim") / webp));
  EXPECT_TRUE(HasNote(doc, "done marker not trusted: it does not list " + webp)) << doc.dump();
  ASSERT_TRUE(WaitFor([&] { return Stat("fallback_done_marker_untrusted") == "1"; }));
}

TEST_F(WorkerComfy, AMarkerListingNoFilesOrMissingFilesIsNotTrusted) {
  // The issue's marker ("files": [], before the frames) and one naming a file never written:
  // planted where this attempt's marker goes, with the node's own marker suppressed.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"empty", R"({"filename_prefix": "x", "files": []})"},
      {"missing", R"({"filename_prefix": "x", "files": ["a1_00001_.png", "a1_00009_.png"]})"}};
  ASSERT_EQ(Post("/_test/faults", {{"prompt", {{"done_marker", "never"}, {"count", 0}}}}).status,
            200);
  StartWorker();
  for (const auto& [id, body] : cases) {
    fs::create_directories(out() / "scenefarm/run1" / id);
    std::ofstream(out() / "scenefarm/run1" / id / "a1.done") << body;
    ASSERT_TRUE(queue_->Enqueue({ComfyScene(id, SourceWorkflow("x", 2))}).ok());
    ASSERT_TRUE(WaitState(id, "succeeded"));
    json doc = Telemetry(id);
    EXPECT_EQ(doc["Telemetry"]["DoneMarkerDetected"], false) << id;
    EXPECT_EQ(doc["Telemetry"]["ForcedCopyTriggered"], true) << id;
    EXPECT_EQ(doc["Telemetry"]["FrameCount"], 2) << id;
    EXPECT_TRUE(HasNote(doc, id == "empty" ? "done marker not trusted: it does not list"
                                           : "a1_00009_.png, which is not on disk"))
        << doc.dump();
  }
}

}  // namespace
}  // namespace scenefarm::testing
