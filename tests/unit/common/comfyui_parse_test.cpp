// JSON from ComfyUI with fields of the wrong type: every parser returns a Status and never
// throws (an exception on civetweb's event thread, or out of the renderer, ends the process).
#include <gtest/gtest.h>

#include "scenefarm/comfyui.h"
#include "scenefarm/gpu.h"

namespace scenefarm::testing {
namespace {

using json = nlohmann::json;

json GoodEntry() {
  return {
      {"outputs", {{"9", {{"images", {{{"filename", "a_00001_.png"}, {"subfolder", "s"}}}}}}}},
      {"status",
       {{"status_str", "success"},
        {"messages", json::array({json::array({"execution_start", {{"timestamp", 1000}}}),
                                  json::array({"execution_success", {{"timestamp", 2000}}})})}}}};
}

TEST(ComfyHistory, AWellFormedEntryReads) {
  auto h = comfyui::ParseHistoryEntry(GoodEntry());
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_TRUE(h->success);
  ASSERT_EQ(h->images.size(), 1u);
  EXPECT_EQ(h->images[0].type, "output");  // absent: output
  EXPECT_EQ(h->finished_ms, 2000);
}

TEST(ComfyHistory, WrongTypedFieldsAreAnErrorNamingTheFieldNotAThrow) {
  struct Case {
    const char* what;
    json entry;
    const char* names;
  };
  std::vector<Case> cases;
  cases.push_back({"entry not an object", json::array({1, 2}), "not an object"});
  cases.push_back({"entry a string", json("x"), "not an object"});
  json e = GoodEntry();
  e["status"] = "success";
  cases.push_back({"status a string", e, "entry.status"});
  e = GoodEntry();
  e["status"]["status_str"] = 1;
  cases.push_back({"status_str a number", e, "status.status_str"});
  e = GoodEntry();
  e["outputs"] = json::array();
  cases.push_back({"outputs an array", e, "entry.outputs"});
  e = GoodEntry();
  e["outputs"]["9"]["images"] = "a.png";
  cases.push_back({"images a string", e, "outputs.9.images"});
  e = GoodEntry();
  e["outputs"]["9"]["images"][0]["filename"] = 7;
  cases.push_back({"filename a number", e, "filename"});
  e = GoodEntry();
  e["outputs"]["9"]["images"][0]["subfolder"] = json::object();
  cases.push_back({"subfolder an object", e, "subfolder"});
  e = GoodEntry();
  e["status"]["messages"] = "none";
  cases.push_back({"messages a string", e, "status.messages"});
  e = GoodEntry();
  e["status"]["messages"][1][1]["timestamp"] = "2000";
  cases.push_back({"timestamp a string", e, "timestamp"});
  e = GoodEntry();
  e["status"]["messages"].push_back(
      json::array({"execution_error", {{"exception_type", json::array()}}}));
  cases.push_back({"exception_type an array", e, "exception_type"});
  for (const auto& c : cases) {
    Result<comfyui::HistoryEntry> h = Status::Internal("not run");
    ASSERT_NO_THROW(h = comfyui::ParseHistoryEntry(c.entry)) << c.what;
    ASSERT_FALSE(h.ok()) << c.what;
    EXPECT_EQ(h.status().code(), StatusCode::kInternal) << c.what;
    EXPECT_NE(h.status().message().find(c.names), std::string::npos)
        << c.what << ": " << h.status().message();
  }
}

TEST(ComfyHistory, OddMessagesAndNullFieldsAreSkipped) {
  json e = GoodEntry();
  e["status"]["messages"].push_back(json::array({3, {{"timestamp", 1}}}));  // name not a string
  e["status"]["messages"].push_back("execution_error");                     // not a pair
  e["outputs"]["9"]["images"].push_back(5);                                 // not an object
  e["outputs"]["9"]["images"][0]["type"] = nullptr;
  e["outputs"]["10"] = "text output";
  auto h = comfyui::ParseHistoryEntry(e);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  ASSERT_EQ(h->images.size(), 1u);
  EXPECT_EQ(h->images[0].type, "output");
  EXPECT_TRUE(h->error_type.empty());
}

TEST(ComfyEvent, PromptEventsRead) {
  auto ev = comfyui::ParseEvent(
      R"({"type":"execution_error","data":{"prompt_id":"p","exception_type":"RuntimeError",)"
      R"("exception_message":"boom","timestamp":12}})");
  ASSERT_TRUE(ev.ok()) << ev.status().ToString();
  ASSERT_TRUE(ev->has_value());
  EXPECT_EQ((*ev)->prompt_id, "p");
  EXPECT_EQ((*ev)->exception_type, "RuntimeError");
  EXPECT_EQ((*ev)->timestamp, 12);
  auto end = comfyui::ParseEvent(R"({"type":"executing","data":{"node":null,"prompt_id":"p"}})");
  ASSERT_TRUE(end.ok() && end->has_value());
  EXPECT_TRUE((*end)->node_null);
}

TEST(ComfyEvent, EventsThatConcernNoPromptAreIgnored) {
  for (const char* text :
       {R"({"type":"status","data":{"status":{"exec_info":{"queue_remaining":0}}}})",
        R"({"type":"crystools.monitor","data":5})", R"({"type":"executing","data":{"node":"3"}})",
        R"({"type":"progress","data":{"prompt_id":null}})"}) {
    auto ev = comfyui::ParseEvent(text);
    ASSERT_TRUE(ev.ok()) << text << ": " << ev.status().ToString();
    EXPECT_FALSE(ev->has_value()) << text;
  }
}

TEST(ComfyEvent, WrongTypedFieldsAreAnErrorNotAThrow) {
  for (const char* text : {
           "not json",
           "[1,2]",
           R"({"type":5,"data":{}})",
           R"({"data":{"prompt_id":"p"}})",
           R"({"type":"executing","data":"p"})",
           R"({"type":"executing","data":{"prompt_id":17}})",
           R"({"type":"execution_success","data":{"prompt_id":"p","timestamp":"12"}})",
           R"({"type":"execution_error","data":{"prompt_id":"p","exception_type":{}}})",
           R"({"type":"execution_error","data":{"prompt_id":"p","exception_message":[1]}})",
       }) {
    Result<std::optional<comfyui::Event>> ev = Status::Internal("not run");
    ASSERT_NO_THROW(ev = comfyui::ParseEvent(text)) << text;
    EXPECT_FALSE(ev.ok()) << text;
    EXPECT_EQ(ev.status().code(), StatusCode::kInternal) << text;
  }
}

TEST(SystemStats, WrongTypedDeviceFieldsAreSkippedNotThrown) {
  json stats = {{"devices",
                 {{{"name", 3}, {"type", json::array()}, {"index", "0"}, {"vram_free", "x"}},
                  {{"name", "cuda:1 NVIDIA RTX"}, {"type", "cuda"}, {"vram_free", 1048576}}}}};
  std::vector<gpu::Reading> r;
  ASSERT_NO_THROW(r = gpu::FromSystemStats(stats));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].type, "");
  EXPECT_FALSE(r[0].free_mb.has_value());
  EXPECT_EQ(r[1].type, "cuda");
  EXPECT_DOUBLE_EQ(*r[1].free_mb, 1.0);
  EXPECT_TRUE(gpu::FromSystemStats(json{{"devices", "none"}}).empty());
}

}  // namespace
}  // namespace scenefarm::testing
