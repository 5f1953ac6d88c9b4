// Fault injection of the ComfyUI test server (/_test/faults, extra_data.scenefarm_test,
// /_test/restart): each fault behaves as the worker will meet it.
#include "png.h"
#include "scenefarm/http_client.h"
#include "support/comfy_harness.h"
#include "support/net.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;

class ComfyFaults : public ComfyServerTest {
 protected:
  void SetFaults(const json& faults) { ASSERT_EQ(Post("/_test/faults", faults).status, 200); }
};

TEST_F(ComfyFaults, Http500ForTheCountedRequestsThenNormal) {
  SetFaults({{"http", {{{"method", "POST"}, {"path", "/prompt"}, {"status", 500}, {"count", 2}}}}});
  json req = {{"prompt", EmptyImageWorkflow("f/a")}, {"prompt_id", "p"}};
  auto first = Post("/prompt", req);
  EXPECT_EQ(first.status, 500);
  EXPECT_NE(first.body.find("500 Internal Server Error"), std::string::npos);
  EXPECT_EQ(Post("/prompt", req).status, 500);
  EXPECT_EQ(Post("/api/prompt", req).status, 200);
  EXPECT_EQ(GetJson("/queue").size(), 2u);  // GET /queue was never faulted
}

TEST_F(ComfyFaults, HangOutlastsTheClientTimeout) {
  SetFaults({{"http", {{{"path", "/history"}, {"delay_ms", 3000}}}}});
  http::Client impatient(server_->url(),
                         {std::chrono::milliseconds(1000), std::chrono::milliseconds(300)});
  auto r = impatient.Get("/history");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
  // The hang was counted once: the next request answers at once.
  auto again = impatient.Get("/history");
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->status, 200);
}

TEST_F(ComfyFaults, WebSocketDropMidPromptThePromptStillCompletes) {
  auto ws = EventCollector::Connect(server_->port(), "w");
  ASSERT_TRUE(ws);
  Submit(SourceWorkflow("f/drop", 5, 20), "w", "p",
         {{"scenefarm_test", {{"ws_drop_after_events", 3}}}});
  ASSERT_TRUE(ws->WaitClosed());
  EXPECT_EQ(ws->TypesFor("p").size(), 3u);
  json h = WaitHistory("p");
  EXPECT_EQ(h["status"]["status_str"], "success");
  // Reconnecting works and carries on receiving events.
  auto again = EventCollector::Connect(server_->port(), "w");
  ASSERT_TRUE(again);
  Submit(SourceWorkflow("f/drop2", 1), "w", "p2");
  EXPECT_TRUE(again->WaitForEnd("p2"));
}

TEST_F(ComfyFaults, DropEndpointClosesEveryClient) {
  auto a = EventCollector::Connect(server_->port(), "a");
  auto b = EventCollector::Connect(server_->port(), "b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->WaitForEvent("status"));
  ASSERT_TRUE(b->WaitForEvent("status"));
  ASSERT_EQ(Post("/_test/ws/drop", json::object()).status, 200);
  EXPECT_TRUE(a->WaitClosed());
  EXPECT_TRUE(b->WaitClosed());
}

TEST_F(ComfyFaults, OutOfMemoryIsAnExecutionErrorAndUnloadsModels) {
  const auto vram_free = [&] {
    return GetJson("/system_stats")["devices"][0]["vram_free"].get<int64_t>();
  };
  const int64_t idle = vram_free();
  Submit(SourceWorkflow("f/warm", 1), "w", "warm");
  ASSERT_FALSE(WaitHistory("warm").is_null());
  ASSERT_LT(vram_free(), idle);  // model loaded
  auto ws = EventCollector::Connect(server_->port(), "w");
  ASSERT_TRUE(ws);
  Submit(SourceWorkflow("f/oom", 2, 0, 7), "w", "oom", {{"scenefarm_test", {{"error", "oom"}}}});
  ASSERT_TRUE(ws->WaitForEvent("execution_error", "oom"));
  json err;
  for (const auto& e : ws->events()) {
    if (e["type"] == "execution_error") err = e["data"];
  }
  EXPECT_EQ(err["exception_type"], "torch.OutOfMemoryError");
  EXPECT_EQ(err["exception_message"].get<std::string>().rfind("Allocation on device", 0), 0u);
  EXPECT_EQ(err["node_id"], "1");
  EXPECT_EQ(err["node_type"], "ScenefarmTestSource");
  for (const char* key :
       {"executed", "traceback", "current_inputs", "current_outputs", "timestamp"}) {
    EXPECT_TRUE(err.contains(key)) << key;
  }
  json h = WaitHistory("oom");
  EXPECT_EQ(h["status"]["status_str"], "error");
  EXPECT_EQ(h["status"]["completed"], false);
  EXPECT_EQ(h["outputs"], json::object());
  EXPECT_EQ(h["status"]["messages"].back()[0], "execution_error");
  EXPECT_EQ(h["status"]["messages"].back()[1]["exception_type"], "torch.OutOfMemoryError");
  EXPECT_EQ(vram_free(), idle);  // every model unloaded
  EXPECT_TRUE(ws->WaitForEnd("oom"));
}

TEST_F(ComfyFaults, OutOfMemoryOnCpuIsARuntimeError) {
  comfy::ServerOptions cpu;
  cpu.device = "cpu";
  StartServer(cpu);
  Submit(SourceWorkflow("f/oomcpu", 1), "w", "p", {{"scenefarm_test", {{"error", "oom"}}}});
  json h = WaitHistory("p");
  const json err = h["status"]["messages"].back()[1];
  EXPECT_EQ(err["exception_type"], "RuntimeError");
  EXPECT_NE(err["exception_message"].get<std::string>().find("can't allocate memory"),
            std::string::npos);
}

TEST_F(ComfyFaults, ServerWidePromptFaultsApplyToTheNextNPrompts) {
  SetFaults({{"prompt", {{"error", "runtime"}, {"count", 2}}}});
  for (int i = 0; i < 3; ++i) {
    Submit(SourceWorkflow("f/n" + std::to_string(i), 1, 0, i), "w", "n" + std::to_string(i));
  }
  EXPECT_EQ(WaitHistory("n0")["status"]["status_str"], "error");
  EXPECT_EQ(WaitHistory("n1")["status"]["status_str"], "error");
  EXPECT_EQ(WaitHistory("n2")["status"]["status_str"], "success");
  EXPECT_EQ(WaitHistory("n0")["status"]["messages"].back()[1]["exception_type"], "RuntimeError");
}

TEST_F(ComfyFaults, HangingPromptStaysRunningUntilInterrupted) {
  Submit(SourceWorkflow("f/hang", 1), "w", "hung", {{"scenefarm_test", {{"hang_ms", 60000}}}});
  ASSERT_TRUE(WaitFor([&] { return GetJson("/queue")["queue_running"].size() == 1; }));
  EXPECT_EQ(GetJson("/history/hung"), json::object());
  ASSERT_EQ(Post("/interrupt", {{"prompt_id", "hung"}}).status, 200);
  const json h = WaitHistory("hung");
  EXPECT_EQ(h["status"]["messages"].back()[0], "execution_interrupted");
}

TEST_F(ComfyFaults, SlowWritesAreVisibleHalfWritten) {
  Submit(SourceWorkflow("f/slow", 1), "w", "slow", {{"scenefarm_test", {{"slow_write_ms", 2000}}}});
  const fs::path file = out() / "f" / "slow_00001_.png";
  ASSERT_TRUE(WaitFor([&] { return fs::exists(file); }));
  std::error_code ec;
  const auto early_size = fs::file_size(file, ec);
  ASSERT_FALSE(WaitHistory("slow").is_null());
  const auto final_size = fs::file_size(file);
  EXPECT_LT(early_size, final_size);
  comfy::PngInfo info;
  EXPECT_TRUE(comfy::DecodePngInfo(ReadFile(file), &info));
}

TEST_F(ComfyFaults, PartialWriteLeavesTheLastFrameTruncated) {
  Submit(SourceWorkflow("f/part", 3), "w", "part", {{"scenefarm_test", {{"partial_write", true}}}});
  json h = WaitHistory("part");
  EXPECT_EQ(h["status"]["status_str"], "success");  // ComfyUI does not know
  comfy::PngInfo info;
  EXPECT_TRUE(comfy::DecodePngInfo(ReadFile(out() / "f" / "part_00002_.png"), &info));
  EXPECT_FALSE(comfy::DecodePngInfo(ReadFile(out() / "f" / "part_00003_.png"), &info));
}

TEST_F(ComfyFaults, DoneMarkerNeverWritten) {
  Submit(SourceWorkflow("f/never", 1, 0, 1, true), "w", "never",
         {{"scenefarm_test", {{"done_marker", "never"}}}});
  EXPECT_EQ(WaitHistory("never")["status"]["status_str"], "success");
  EXPECT_TRUE(fs::exists(out() / "f" / "never_00001_.png"));
  EXPECT_FALSE(fs::exists(out() / "f" / "never.done"));
  EXPECT_FALSE(fs::exists(out() / "f" / "never.done.tmp"));
}

TEST_F(ComfyFaults, DoneMarkerArrivesLate) {
  Submit(SourceWorkflow("f/late", 1, 0, 1, true), "w", "late",
         {{"scenefarm_test", {{"done_marker_delay_ms", 1500}}}});
  ASSERT_EQ(WaitHistory("late")["status"]["status_str"], "success");
  EXPECT_FALSE(fs::exists(out() / "f" / "late.done"));
  EXPECT_TRUE(WaitFor([&] { return fs::exists(out() / "f" / "late.done"); }));
}

TEST_F(ComfyFaults, SuccessEventCanPrecedeTheHistoryEntry) {
  auto ws = EventCollector::Connect(server_->port(), "w");
  ASSERT_TRUE(ws);
  Submit(SourceWorkflow("f/hist", 1), "w", "h", {{"scenefarm_test", {{"history_delay_ms", 1500}}}});
  ASSERT_TRUE(ws->WaitForEvent("execution_success", "h"));
  EXPECT_EQ(GetJson("/history/h"), json::object());
  ASSERT_TRUE(ws->WaitForEnd("h"));
  EXPECT_FALSE(GetJson("/history/h").empty());  // written before executing-null
}

TEST_F(ComfyFaults, RestartForgetsQueueHistoryAndSocketsButNotFiles) {
  Submit(SourceWorkflow("f/r", 1), "w", "done-before");
  ASSERT_FALSE(WaitHistory("done-before").is_null());
  auto ws = EventCollector::Connect(server_->port(), "w");
  ASSERT_TRUE(ws);
  Submit(SourceWorkflow("f/r", 100, 50, 2), "w", "running");
  Submit(SourceWorkflow("f/r", 1, 0, 3), "w", "pending");
  ASSERT_TRUE(ws->WaitForEvent("progress", "running"));
  const int port = server_->port();
  ASSERT_EQ(Post("/_test/restart", {{"down_ms", 1000}}).status, 200);
  EXPECT_TRUE(ws->WaitClosed());
  EXPECT_TRUE(WaitFor([&] { return !PortOpen(port); }, std::chrono::milliseconds(2000)));
  ASSERT_TRUE(WaitFor([&] { return PortOpen(port); }));
  EXPECT_EQ(GetJson("/history"), json::object());
  json q = GetJson("/queue");
  EXPECT_TRUE(q["queue_running"].empty());
  EXPECT_TRUE(q["queue_pending"].empty());
  EXPECT_EQ(ws->TypesFor("running").back(), "progress");  // never finished
  // The SaveImage counter continues from the files on disk.
  Submit(SourceWorkflow("f/r", 1, 0, 4), "w", "after");
  EXPECT_EQ(WaitHistory("after")["outputs"]["2"]["images"][0]["filename"], "r_00002_.png");
}

}  // namespace
}  // namespace scenefarm::testing
