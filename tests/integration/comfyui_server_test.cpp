// The ComfyUI test server against ../shared/comfyui-api.md, through a real HTTP client
// (libcurl) and a real WebSocket client (civetweb).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "png.h"
#include "support/comfy_harness.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;
using comfy::DecodePngInfo;
using comfy::PngInfo;

class ComfyApi : public ComfyServerTest {};

// A raw HTTP request, for headers our client never sends (Origin).
std::string RawRequest(int port, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return "";
  (void)!write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  ssize_t n = 0;
  while ((n = read(fd, buf, sizeof(buf))) > 0)
    response.append(buf, static_cast<size_t>(n));
  close(fd);
  return response;
}

TEST_F(ComfyApi, PromptKeepsClientChosenIdAndCountsNumbers) {
  json r1 = Submit(EmptyImageWorkflow("run1/a"), "w1", "scene-a-1");
  json r2 = Submit(EmptyImageWorkflow("run1/b"), "w1", "scene-b-1");
  EXPECT_EQ(r1["prompt_id"], "scene-a-1");
  EXPECT_EQ(r1["number"], 0);
  EXPECT_EQ(r2["number"], 1);
  EXPECT_EQ(r1["node_errors"], json::object());
  EXPECT_FALSE(WaitHistory("scene-b-1").is_null());
}

TEST_F(ComfyApi, PromptWithoutIdGetsAUuid) {
  auto r = Post("/prompt", {{"prompt", EmptyImageWorkflow("x/y")}});
  ASSERT_EQ(r.status, 200);
  const std::string id = json::parse(r.body)["prompt_id"];
  EXPECT_EQ(id.size(), 36u);
  EXPECT_EQ(id[8], '-');
}

TEST_F(ComfyApi, EveryRouteAlsoAnswersUnderApi) {
  for (const char* path : {"/system_stats", "/queue", "/history", "/prompt", "/object_info"}) {
    json plain = GetJson(path);
    json api = GetJson(std::string("/api") + path);
    EXPECT_TRUE(plain.is_object()) << path;
    EXPECT_EQ(plain.is_object(), api.is_object()) << path;
  }
  auto missing = http_->Get("/api/no_such_route");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
}

TEST_F(ComfyApi, OriginFromAnotherHostIsForbidden) {
  const int port = server_->port();
  const std::string host = "127.0.0.1:" + std::to_string(port);
  const std::string bad = RawRequest(port, "GET /queue HTTP/1.1\r\nHost: " + host +
                                               "\r\nOrigin: http://evil.example\r\n"
                                               "Connection: close\r\n\r\n");
  EXPECT_NE(bad.find("HTTP/1.1 403"), std::string::npos) << bad;
  const std::string same =
      RawRequest(port, "GET /queue HTTP/1.1\r\nHost: " + host + "\r\nOrigin: http://" + host +
                           "\r\nConnection: close\r\n\r\n");
  EXPECT_NE(same.find("HTTP/1.1 200"), std::string::npos) << same;
}

TEST_F(ComfyApi, EventsFollowComfyUiOrderAndEndWithExecutingNull) {
  auto ws = EventCollector::Connect(server_->port(), "w1");
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->WaitForEvent("status"));
  EXPECT_EQ(ws->events()[0]["data"]["sid"], "w1");
  Submit(SourceWorkflow("run1/sceneA", 2, 5), "w1", "p1");
  ASSERT_TRUE(ws->WaitForEnd("p1"));
  const std::vector<std::string> expected = {"execution_start", "execution_cached",  "executing",
                                             "progress",        "progress",          "executing",
                                             "executed",        "execution_success", "executing"};
  EXPECT_EQ(ws->TypesFor("p1"), expected);
  // The full stream: status broadcasts around the prompt, executing null last of all.
  const auto all = ws->events();
  EXPECT_EQ(all.back()["type"], "executing");
  EXPECT_TRUE(all.back()["data"]["node"].is_null());
  EXPECT_EQ(all[all.size() - 2]["type"], "status");
  EXPECT_EQ(all[all.size() - 2]["data"]["status"]["exec_info"]["queue_remaining"], 0);
  for (const auto& e : all) {
    if (e["type"] == "executed") {
      EXPECT_EQ(e["data"]["node"], "2");
      EXPECT_EQ(e["data"]["output"]["images"].size(), 2u);
    }
    if (e["type"] == "execution_start") {
      EXPECT_TRUE(e["data"]["timestamp"].is_number_integer());
    }
  }
}

TEST_F(ComfyApi, PromptEventsGoOnlyToTheSubmittingClient) {
  auto mine = EventCollector::Connect(server_->port(), "mine");
  auto other = EventCollector::Connect(server_->port(), "other");
  ASSERT_TRUE(mine && other);
  Submit(EmptyImageWorkflow("r/a"), "mine", "p-mine");
  ASSERT_TRUE(mine->WaitForEnd("p-mine"));
  ASSERT_FALSE(WaitHistory("p-mine").is_null());
  for (const auto& e : other->events())
    EXPECT_EQ(e["type"], "status") << e.dump();
  // A prompt without client_id sends its events to nobody.
  Post("/prompt", {{"prompt", EmptyImageWorkflow("r/b")}, {"prompt_id", "p-none"}});
  ASSERT_FALSE(WaitHistory("p-none").is_null());
  EXPECT_TRUE(mine->TypesFor("p-none").empty());
}

TEST_F(ComfyApi, SaveImageWritesNumberedPngsCarryingThePrompt) {
  Submit(EmptyImageWorkflow("run1/sceneA", 3), "w", "p1");
  json entry = WaitHistory("p1");
  ASSERT_FALSE(entry.is_null());
  const json images = entry["outputs"]["2"]["images"];
  ASSERT_EQ(images.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const std::string name = "sceneA_0000" + std::to_string(i + 1) + "_.png";
    EXPECT_EQ(images[i], json({{"filename", name}, {"subfolder", "run1"}, {"type", "output"}}));
    PngInfo info;
    ASSERT_TRUE(DecodePngInfo(ReadFile(out() / "run1" / name), &info)) << name;
    EXPECT_EQ(info.width, 64);
    ASSERT_FALSE(info.text.empty());
    EXPECT_EQ(info.text[0].first, "prompt");
    EXPECT_EQ(json::parse(info.text[0].second)["2"]["class_type"], "SaveImage");
  }
  // The counter continues for the same prefix (a different batch size defeats the cache).
  Submit(EmptyImageWorkflow("run1/sceneA", 2), "w", "p2");
  json second = WaitHistory("p2");
  ASSERT_FALSE(second.is_null());
  EXPECT_EQ(second["outputs"]["2"]["images"][0]["filename"], "sceneA_00004_.png");
  EXPECT_TRUE(fs::exists(out() / "run1" / "sceneA_00005_.png"));
}

TEST_F(ComfyApi, IdenticalWorkflowIsCachedUntilFreeMemory) {
  auto ws = EventCollector::Connect(server_->port(), "w");
  ASSERT_TRUE(ws);
  Submit(EmptyImageWorkflow("run1/sceneA", 3), "w", "first");
  ASSERT_TRUE(ws->WaitForEnd("first"));
  Submit(EmptyImageWorkflow("run1/sceneA", 3), "w", "again");
  ASSERT_TRUE(ws->WaitForEnd("again"));
  json cached_nodes;
  bool executed_event = false;
  for (const auto& e : ws->events()) {
    if (e["data"].value("prompt_id", "") != "again") continue;
    if (e["type"] == "execution_cached") cached_nodes = e["data"]["nodes"];
    if (e["type"] == "executed") executed_event = true;
    if (e["type"] == "executing") {
      EXPECT_TRUE(e["data"]["node"].is_null()) << "a cached node ran: " << e.dump();
    }
  }
  EXPECT_EQ(cached_nodes, json({"1", "2"}));
  EXPECT_TRUE(executed_event);
  json entry = WaitHistory("again");
  EXPECT_EQ(entry["outputs"]["2"]["images"][0]["filename"], "sceneA_00001_.png");
  EXPECT_FALSE(fs::exists(out() / "run1" / "sceneA_00004_.png"));

  ASSERT_EQ(Post("/free", {{"free_memory", true}}).status, 200);
  ASSERT_TRUE(WaitFor([&] { return GetJson("/_test/stats")["cache_entries"] == 0; }));
  Submit(EmptyImageWorkflow("run1/sceneA", 3), "w", "after-free");
  EXPECT_EQ(WaitHistory("after-free")["outputs"]["2"]["images"][0]["filename"],
            "sceneA_00004_.png");
}

TEST_F(ComfyApi, ChangedPrefixRerunsOnlyTheSaveNode) {
  auto ws = EventCollector::Connect(server_->port(), "w");
  ASSERT_TRUE(ws);
  Submit(SourceWorkflow("run1/a1"), "w", "a1");
  ASSERT_TRUE(ws->WaitForEnd("a1"));
  Submit(SourceWorkflow("run1/a2"), "w", "a2");
  ASSERT_TRUE(ws->WaitForEnd("a2"));
  for (const auto& e : ws->events()) {
    if (e["type"] == "execution_cached" && e["data"]["prompt_id"] == "a2") {
      EXPECT_EQ(e["data"]["nodes"], json({"1"}));
    }
  }
  EXPECT_TRUE(fs::exists(out() / "run1" / "a2_00003_.png"));
}

TEST_F(ComfyApi, HistoryEntryHasComfyUiShape) {
  Submit(EmptyImageWorkflow("run1/s", 1), "w", "p1");
  json e = WaitHistory("p1");
  ASSERT_FALSE(e.is_null());
  ASSERT_EQ(e["prompt"].size(), 5u);
  EXPECT_EQ(e["prompt"][0], 0);
  EXPECT_EQ(e["prompt"][1], "p1");
  EXPECT_EQ(e["prompt"][2]["1"]["class_type"], "EmptyImage");
  EXPECT_EQ(e["prompt"][3]["client_id"], "w");
  EXPECT_EQ(e["prompt"][4], json({"2"}));
  EXPECT_EQ(e["status"]["status_str"], "success");
  EXPECT_EQ(e["status"]["completed"], true);
  std::vector<std::string> kinds;
  for (const auto& m : e["status"]["messages"])
    kinds.push_back(m[0]);
  EXPECT_EQ(kinds,
            (std::vector<std::string>{"execution_start", "execution_cached", "execution_success"}));
  EXPECT_EQ(e["meta"]["2"]["node_id"], "2");
  EXPECT_EQ(GetJson("/history/unknown-id"), json::object());
}

TEST_F(ComfyApi, HistoryPagingDeleteAndClear) {
  for (int i = 0; i < 4; ++i) {
    Submit(EmptyImageWorkflow("run/p" + std::to_string(i), 1), "w", "h" + std::to_string(i));
  }
  ASSERT_FALSE(WaitHistory("h3").is_null());
  json newest = GetJson("/history?max_items=2");
  ASSERT_EQ(newest.size(), 2u);
  EXPECT_TRUE(newest.contains("h2") && newest.contains("h3"));
  json paged = GetJson("/history?max_items=1&offset=1");
  ASSERT_EQ(paged.size(), 1u);
  EXPECT_TRUE(paged.contains("h1"));
  ASSERT_EQ(Post("/history", {{"delete", {"h0"}}}).status, 200);
  EXPECT_EQ(GetJson("/history").size(), 3u);
  ASSERT_EQ(Post("/history", {{"clear", true}}).status, 200);
  EXPECT_EQ(GetJson("/history"), json::object());
}

TEST_F(ComfyApi, QueueShowsRunningAndPendingAndDeletesPending) {
  Submit(SourceWorkflow("q/long", 100, 50), "w", "long");
  Submit(SourceWorkflow("q/next", 1, 0, 2), "w", "next");
  Submit(SourceWorkflow("q/gone", 1, 0, 3), "w", "gone");
  ASSERT_TRUE(WaitFor([&] { return GetJson("/queue")["queue_running"].size() == 1; }));
  json q = GetJson("/queue");
  EXPECT_EQ(q["queue_running"][0][1], "long");
  ASSERT_EQ(q["queue_pending"].size(), 2u);
  EXPECT_EQ(q["queue_pending"][0][1], "next");
  EXPECT_EQ(GetJson("/prompt")["exec_info"]["queue_remaining"], 3);
  ASSERT_EQ(Post("/queue", {{"delete", {"gone"}}}).status, 200);
  EXPECT_EQ(GetJson("/queue")["queue_pending"].size(), 1u);
  ASSERT_EQ(Post("/interrupt", json::object()).status, 200);
  EXPECT_FALSE(WaitHistory("next").is_null());
  EXPECT_EQ(GetJson("/history/gone"), json::object());
}

TEST_F(ComfyApi, InterruptOfAnotherPromptIdDoesNothingAndOfItsOwnStopsIt) {
  auto ws = EventCollector::Connect(server_->port(), "w");
  ASSERT_TRUE(ws);
  Submit(SourceWorkflow("i/long", 200, 20), "w", "long");
  ASSERT_TRUE(ws->WaitForEvent("progress", "long"));
  ASSERT_EQ(Post("/interrupt", {{"prompt_id", "someone-else"}}).status, 200);
  ASSERT_EQ(Post("/interrupt", {{"prompt_id", "long"}}).status, 200);
  ASSERT_TRUE(ws->WaitForEvent("execution_interrupted", "long"));
  for (const auto& e : ws->events()) {
    if (e["type"] != "execution_interrupted") continue;
    EXPECT_EQ(e["data"]["node_id"], "1");
    EXPECT_EQ(e["data"]["node_type"], "ScenefarmTestSource");
  }
  json h = WaitHistory("long");
  EXPECT_EQ(h["status"]["status_str"], "error");
  EXPECT_EQ(h["status"]["completed"], false);
  EXPECT_EQ(h["outputs"], json::object());
  EXPECT_FALSE(fs::exists(out() / "i" / "long_00001_.png"));
  EXPECT_TRUE(ws->WaitForEnd("long"));
}

TEST_F(ComfyApi, VramFreeDropsWhileRenderingAndReturnsAfterUnload) {
  auto vram_free = [&] {
    return GetJson("/system_stats")["devices"][0]["vram_free"].get<int64_t>();
  };
  json stats = GetJson("/system_stats");
  const json dev = stats["devices"][0];
  EXPECT_EQ(dev["type"], "cuda");
  EXPECT_EQ(dev["index"], 0);
  EXPECT_EQ(dev["name"], "cuda:0 NVIDIA GeForce RTX 3090 : cudaMallocAsync");
  EXPECT_EQ(stats["system"]["comfyui_version"], "0.8.0");
  const int64_t idle = vram_free();
  Submit(SourceWorkflow("v/a", 100, 20), "w", "render");
  int64_t during = idle;
  ASSERT_TRUE(WaitFor([&] { return (during = vram_free()) < idle - (6LL << 30); }));
  ASSERT_EQ(Post("/interrupt", json::object()).status, 200);
  ASSERT_FALSE(WaitHistory("render").is_null());
  const int64_t after = vram_free();
  EXPECT_GT(after, during);  // working memory released
  EXPECT_LT(after, idle);    // the model stays loaded, as in ComfyUI
  ASSERT_EQ(Post("/free", {{"unload_models", true}}).status, 200);
  EXPECT_TRUE(WaitFor([&] { return vram_free() == idle; }));
}

TEST_F(ComfyApi, CpuDeviceReportsHostMemory) {
  comfy::ServerOptions cpu;
  cpu.device = "cpu";
  StartServer(cpu);
  json dev = GetJson("/system_stats")["devices"][0];
  EXPECT_EQ(dev["name"], "cpu");
  EXPECT_EQ(dev["type"], "cpu");
  EXPECT_TRUE(dev["index"].is_null());
  EXPECT_GT(dev["vram_total"].get<int64_t>(), 0);
}

TEST_F(ComfyApi, ObjectInfoListsTheDoneMarkerNodesAsCustomNodes) {
  json info = GetJson("/object_info");
  EXPECT_FALSE(info.contains("ScenefarmDoneMarker"));  // removed: it had to wait for SaveImage
  ASSERT_TRUE(info.contains("ScenefarmSaveImage"));
  EXPECT_EQ(info["ScenefarmSaveImage"]["python_module"], "custom_nodes.scenefarm_done_marker");
  EXPECT_EQ(info["ScenefarmSaveImage"]["output_node"], true);
  EXPECT_EQ(info["ScenefarmSaveImage"]["input"]["optional"]["done_marker"][0], "STRING");
  EXPECT_EQ(info["ScenefarmVideoDoneMarker"]["input"]["required"]["filenames"][0], "VHS_FILENAMES");
  EXPECT_EQ(info["VHS_VideoCombine"]["output"], json({"VHS_FILENAMES"}));
  EXPECT_EQ(info["SaveImage"]["input"]["required"]["images"][0], "IMAGE");
  EXPECT_TRUE(GetJson("/object_info/SaveImage").contains("SaveImage"));
  EXPECT_EQ(GetJson("/object_info/NoSuchNode"), json::object());
}

TEST_F(ComfyApi, ViewServesOutputsAndRefusesEscapes) {
  Submit(EmptyImageWorkflow("run1/v", 1), "w", "p");
  ASSERT_FALSE(WaitHistory("p").is_null());
  auto ok = http_->Get("/view?filename=v_00001_.png&subfolder=run1&type=output");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->status, 200);
  EXPECT_EQ(ok->content_type, "image/png");
  EXPECT_EQ(ok->body, ReadFile(out() / "run1" / "v_00001_.png"));
  auto status = [&](const std::string& q) { return http_->Get("/view?" + q)->status; };
  EXPECT_EQ(status("filename=&type=output"), 400);
  EXPECT_EQ(status("filename=%2Fetc%2Fpasswd"), 400);
  EXPECT_EQ(status("filename=..%2Fx.png"), 400);
  EXPECT_EQ(status("filename=v_00001_.png&subfolder=..%2F..&type=output"), 403);
  EXPECT_EQ(status("filename=missing.png&subfolder=run1"), 404);
  EXPECT_EQ(status("filename=v_00001_.png&type=nonsense"), 400);
}

TEST_F(ComfyApi, DoneMarkerIsWrittenAtomicallyAfterTheFrames) {
  Submit(SourceWorkflow("run1/sceneM", 2, 0, 1, true), "w", "m");
  json e = WaitHistory("m");
  ASSERT_EQ(e["status"]["status_str"], "success");
  const fs::path marker = out() / "run1" / "sceneM.done";
  ASSERT_TRUE(fs::exists(marker));
  EXPECT_FALSE(fs::exists(out() / "run1" / "sceneM.done.tmp"));
  json body = json::parse(ReadFile(marker));
  EXPECT_EQ(body["filename_prefix"], "run1/sceneM");
  EXPECT_EQ(body["files"], json({"sceneM_00001_.png", "sceneM_00002_.png"}));
  EXPECT_EQ(e["outputs"]["2"]["images"].size(), 2u);  // reported as SaveImage reports
  EXPECT_GE(fs::last_write_time(marker), fs::last_write_time(out() / "run1" / "sceneM_00002_.png"));
}

// Source "1" -> SaveImage "2" and SaveImage "3": the order of the two outputs follows the seed,
// and their input runs before either.
std::vector<std::string> ExecutedNodes(EventCollector& ws, const std::string& prompt_id) {
  std::vector<std::string> ids;
  for (const auto& e : ws.events()) {
    if (e["type"] == "executing" && e["data"].value("prompt_id", "") == prompt_id &&
        e["data"]["node"].is_string())
      ids.push_back(e["data"]["node"]);
  }
  return ids;
}

TEST_F(ComfyApi, IndependentOutputNodesRunInTheOrderOfTheProcessSeed) {
  const std::vector<std::string> outputs = {"2", "3"};
  for (const std::string first : {"2", "3"}) {
    comfy::ServerOptions so;
    so.output_order_seed = comfy::SeedForOrder(outputs, first);
    ASSERT_NE(*so.output_order_seed, 0u);
    StartServer(so);
    EXPECT_EQ(server_->order_seed(), *so.output_order_seed);
    auto ws = EventCollector::Connect(server_->port(), "w");
    ASSERT_TRUE(ws);
    json w = SourceWorkflow("o" + first + "/a", 1);
    w["3"] = {{"class_type", "SaveImage"},
              {"inputs", {{"images", {"1", 0}}, {"filename_prefix", "o" + first + "/b"}}}};
    Submit(w, "w", "p" + first);
    ASSERT_TRUE(ws->WaitForEnd("p" + first));
    const std::string second = first == "2" ? "3" : "2";
    EXPECT_EQ(ExecutedNodes(*ws, "p" + first), (std::vector<std::string>{"1", first, second}));
  }
}

TEST_F(ComfyApi, UnseededServersPickTheirOwnOrderSeed) {
  const uint64_t a = server_->order_seed();
  StartServer({});
  EXPECT_NE(server_->order_seed(), a);  // 64 random bits each: equal once in 2^64
}

TEST_F(ComfyApi, ADependentOutputNodeRunsAfterItsInputInEitherOrder) {
  // Video Combine "2" -> ScenefarmVideoDoneMarker "3": both are output nodes.
  for (const std::string first : {"2", "3"}) {
    comfy::ServerOptions so;
    so.output_order_seed = comfy::SeedForOrder({"2", "3"}, first);
    StartServer(so);
    auto ws = EventCollector::Connect(server_->port(), "w");
    ASSERT_TRUE(ws);
    json w = VideoWorkflow("v" + first + "/a1", 2);
    w["3"] = {{"class_type", "ScenefarmVideoDoneMarker"},
              {"inputs", {{"filenames", {"2", 0}}, {"filename_prefix", "v" + first + "/a1"}}}};
    Submit(w, "w", "p" + first);
    json e = WaitHistory("p" + first);
    ASSERT_EQ(e["status"]["status_str"], "success") << e.dump();
    ASSERT_TRUE(ws->WaitForEnd("p" + first));  // the events may trail the history entry
    EXPECT_EQ(ExecutedNodes(*ws, "p" + first), (std::vector<std::string>{"1", "2", "3"}));
    json body = json::parse(ReadFile(out() / ("v" + first) / "a1.done"));
    EXPECT_EQ(body["files"], json({"a1_00001.png", "a1_00001.mp4"}));
  }
}

TEST_F(ComfyApi, AMarkerOutsideTheOutputDirIsRefusedBeforeAnythingIsSaved) {
  json w = SourceWorkflow("esc/a1", 1, 0, 1, true);
  w["2"]["inputs"]["done_marker"] = "../../evil.done";
  Submit(w, "w", "esc");
  json e = WaitHistory("esc");
  EXPECT_EQ(e["status"]["status_str"], "error");
  bool found = false;
  for (const auto& m : e["status"]["messages"]) {
    if (m[0] == "execution_error") {
      found = true;
      EXPECT_EQ(m[1]["exception_type"], "ValueError");
    }
  }
  EXPECT_TRUE(found) << e.dump();
  EXPECT_FALSE(fs::exists(out() / "esc"));
  EXPECT_FALSE(fs::exists(dir_.path().parent_path() / "evil.done"));
}

TEST_F(ComfyApi, VideoCombineReportsGifsAndItsFilenames) {
  Submit(VideoWorkflow("vid/a1", 3, "image/gif"), "w", "v");
  json e = WaitHistory("v");
  ASSERT_EQ(e["status"]["status_str"], "success") << e.dump();
  const json gif = e["outputs"]["2"]["gifs"][0];
  EXPECT_EQ(gif["filename"], "a1_00001.gif");
  EXPECT_EQ(gif["subfolder"], "vid");
  EXPECT_EQ(gif["type"], "output");
  EXPECT_EQ(gif["format"], "image/gif");
  EXPECT_EQ(gif["workflow"], "a1_00001.png");
  EXPECT_FALSE(e["outputs"]["2"].contains("images"));
  EXPECT_EQ(ReadFile(out() / "vid" / "a1_00001.gif").substr(0, 6), "GIF89a");
  EXPECT_TRUE(fs::exists(out() / "vid" / "a1_00001.png"));
  // The counter continues from VHS's own names (2 frames: not ComfyUI's cached result).
  Submit(VideoWorkflow("vid/a1", 2, "image/gif"), "w", "v2");
  EXPECT_EQ(WaitHistory("v2")["outputs"]["2"]["gifs"][0]["filename"], "a1_00002.gif");
}

TEST_F(ComfyApi, SaveAnimatedWebpReportsImagesWithAnimated) {
  json w = SourceWorkflow("anim/a1", 3);
  w["2"] = {{"class_type", "SaveAnimatedWEBP"},
            {"inputs",
             {{"images", {"1", 0}},
              {"filename_prefix", "anim/a1"},
              {"fps", 6.0},
              {"lossless", false},
              {"quality", 80},
              {"method", "default"}}}};
  Submit(w, "w", "a");
  json e = WaitHistory("a");
  ASSERT_EQ(e["status"]["status_str"], "success") << e.dump();
  EXPECT_EQ(e["outputs"]["2"]["images"][0]["filename"], "a1_00001_.webp");
  EXPECT_EQ(e["outputs"]["2"]["animated"], json({true}));
  const std::string bytes = ReadFile(out() / "anim" / "a1_00001_.webp");
  EXPECT_EQ(bytes.substr(0, 4), "RIFF");
  EXPECT_EQ(bytes.substr(8, 4), "WEBP");
}

TEST_F(ComfyApi, SavePrefixEscapingTheOutputDirIsAnExecutionError) {
  auto ws = EventCollector::Connect(server_->port(), "w");
  ASSERT_TRUE(ws);
  Submit(EmptyImageWorkflow("../../escape", 1), "w", "esc");
  ASSERT_TRUE(ws->WaitForEvent("execution_error", "esc"));
  for (const auto& e : ws->events()) {
    if (e["type"] != "execution_error") continue;
    EXPECT_EQ(e["data"]["node_type"], "SaveImage");
    EXPECT_EQ(e["data"]["exception_type"], "Exception");
    EXPECT_NE(e["data"]["exception_message"].get<std::string>().find("outside the output folder"),
              std::string::npos);
  }
  EXPECT_EQ(WaitHistory("esc")["status"]["status_str"], "error");
  EXPECT_FALSE(fs::exists(dir_.path().parent_path() / "escape_00001_.png"));
}

TEST_F(ComfyApi, ReconnectingClientIsToldTheCurrentNode) {
  auto first = EventCollector::Connect(server_->port(), "w");
  ASSERT_TRUE(first);
  Submit(SourceWorkflow("rc/a", 100, 20), "w", "long");
  ASSERT_TRUE(first->WaitForEvent("progress", "long"));
  first.reset();
  auto again = EventCollector::Connect(server_->port(), "w");
  ASSERT_TRUE(again);
  ASSERT_TRUE(again->Wait([](const std::vector<json>& evs) {
    return evs.size() >= 2 && evs[1]["type"] == "executing" && evs[1]["data"]["node"] == "1";
  }));
  Post("/interrupt", json::object());
  EXPECT_TRUE(again->WaitForEnd("long"));
}

TEST_F(ComfyApi, ValidationErrorsMatchComfyUi) {
  auto post = [&](const json& prompt) { return Post("/prompt", {{"prompt", prompt}}); };
  json unknown = {{"1", {{"class_type", "NoSuchNode"}, {"inputs", json::object()}}}};
  auto r = post(unknown);
  EXPECT_EQ(r.status, 400);
  json body = json::parse(r.body);
  EXPECT_EQ(body["error"]["type"], "invalid_prompt");
  EXPECT_EQ(body["error"]["message"], "Cannot execute because node NoSuchNode does not exist.");
  EXPECT_EQ(body["error"]["details"], "Node ID '#1'");
  EXPECT_EQ(body["node_errors"], json::object());

  json missing = EmptyImageWorkflow("x/y");
  missing["2"]["inputs"].erase("filename_prefix");
  r = post(missing);
  EXPECT_EQ(r.status, 400);
  body = json::parse(r.body);
  EXPECT_EQ(body["error"]["type"], "prompt_outputs_failed_validation");
  EXPECT_EQ(body["node_errors"]["2"]["errors"][0]["type"], "required_input_missing");
  EXPECT_EQ(body["node_errors"]["2"]["class_type"], "SaveImage");
  EXPECT_EQ(body["node_errors"]["2"]["dependent_outputs"], json({"2"}));

  json no_outputs = {{"1", EmptyImageWorkflow("a")["1"]}};
  body = json::parse(post(no_outputs).body);
  EXPECT_EQ(body["error"]["type"], "prompt_no_outputs");

  r = Post("/prompt", {{"client_id", "w"}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(json::parse(r.body)["error"]["type"], "no_prompt");

  auto not_json = http_->Post("/prompt", "{not json");
  ASSERT_TRUE(not_json.ok());
  EXPECT_EQ(not_json->status, 500);
  EXPECT_EQ(GetJson("/queue")["queue_pending"].size(), 0u);
}

}  // namespace
}  // namespace scenefarm::testing
