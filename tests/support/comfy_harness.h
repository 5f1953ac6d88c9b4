// Test fixtures around the ComfyUI test server: an in-process server in a temporary directory,
// an HTTP client for it, and a WebSocket event collector.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scenefarm/http_client.h"
#include "scenefarm/ws_client.h"
#include "server.h"
#include "support/process.h"

namespace scenefarm::testing {

using json = nlohmann::json;

// Collects every text event of one /ws connection.
class EventCollector {
 public:
  static std::unique_ptr<EventCollector> Connect(int port, const std::string& client_id) {
    auto c = std::unique_ptr<EventCollector>(new EventCollector());
    EventCollector* raw = c.get();
    auto ws = ws::Client::Connect(
        "127.0.0.1", port, "/ws?clientId=" + client_id,
        [raw](std::string_view text) { raw->Add(json::parse(text, nullptr, false)); },
        [raw] {
          std::lock_guard<std::mutex> lock(raw->mu_);
          raw->closed_ = true;
          raw->cv_.notify_all();
        });
    if (!ws.ok()) return nullptr;
    c->ws_ = std::move(ws).value();
    // ComfyUI registers the socket under its clientId before it sends the first `status`
    // message; events of a prompt submitted before that reach no one (a real client has the
    // same race). Waiting for it makes every later event of this client arrive here.
    if (!c->WaitForEvent("status")) return nullptr;
    return c;
  }

  std::vector<json> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }
  // Types of the events about prompt_id, in arrival order.
  std::vector<std::string> TypesFor(const std::string& prompt_id) {
    std::vector<std::string> out;
    for (const auto& e : events()) {
      if (e["data"].value("prompt_id", "") == prompt_id) out.push_back(e["type"]);
    }
    return out;
  }
  template <typename Pred>
  bool Wait(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return pred(events_); });
  }
  // Waits for an event of `type` (about prompt_id when given).
  bool WaitForEvent(const std::string& type, const std::string& prompt_id = "",
                    std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    return Wait(
        [&](const std::vector<json>& evs) {
          for (const auto& e : evs) {
            if (e["type"] == type &&
                (prompt_id.empty() || e["data"].value("prompt_id", "") == prompt_id)) {
              return true;
            }
          }
          return false;
        },
        timeout);
  }
  // The end of a prompt for this client: executing with node null.
  bool WaitForEnd(const std::string& prompt_id,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    return Wait(
        [&](const std::vector<json>& evs) {
          for (const auto& e : evs) {
            if (e["type"] == "executing" && e["data"]["node"].is_null() &&
                e["data"].value("prompt_id", "") == prompt_id) {
              return true;
            }
          }
          return false;
        },
        timeout);
  }
  bool WaitClosed(std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return closed_; });
  }

 private:
  EventCollector() = default;
  void Add(json e) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(e));
    cv_.notify_all();
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<json> events_;
  bool closed_ = false;
  std::unique_ptr<ws::Client> ws_;  // last: destroyed first, so no callback outlives the rest
};

// ScenefarmTestSource -> SaveImage (ScenefarmSaveImage, which writes the done marker, when
// done_marker).
inline json SourceWorkflow(const std::string& prefix, int frames = 3, int ms_per_frame = 0,
                           int seed = 1, bool done_marker = false) {
  json w = {{"1",
             {{"class_type", "ScenefarmTestSource"},
              {"inputs",
               {{"frames", frames},
                {"width", 16},
                {"height", 16},
                {"render_ms_per_frame", ms_per_frame},
                {"seed", seed}}}}},
            {"2",
             {{"class_type", done_marker ? "ScenefarmSaveImage" : "SaveImage"},
              {"inputs", {{"images", {"1", 0}}, {"filename_prefix", prefix}}}}}};
  return w;
}

// The workflow of ../shared/comfyui-api.md's observation: EmptyImage(64x64, batch) -> SaveImage.
inline json EmptyImageWorkflow(const std::string& prefix, int batch = 3) {
  return {{"1",
           {{"class_type", "EmptyImage"},
            {"inputs", {{"width", 64}, {"height", 64}, {"batch_size", batch}, {"color", 0}}}}},
          {"2",
           {{"class_type", "SaveImage"},
            {"inputs", {{"images", {"1", 0}}, {"filename_prefix", prefix}}}}}};
}

// ScenefarmTestSource -> VHS_VideoCombine (format, e.g. "video/h264-mp4").
inline json VideoWorkflow(const std::string& prefix, int frames = 3,
                          const std::string& format = "video/h264-mp4") {
  return {{"1",
           {{"class_type", "ScenefarmTestSource"},
            {"inputs",
             {{"frames", frames},
              {"width", 16},
              {"height", 16},
              {"render_ms_per_frame", 0},
              {"seed", 1}}}}},
          {"2",
           {{"class_type", "VHS_VideoCombine"},
            {"inputs",
             {{"images", {"1", 0}},
              {"frame_rate", 8},
              {"loop_count", 0},
              {"filename_prefix", prefix},
              {"format", format},
              {"pingpong", false},
              {"save_output", true}}}}}};
}

class ComfyServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }

  void StartServer(testing::comfy::ServerOptions options) {
    server_.reset();
    options.base_dir = dir_.path();
    server_ = std::make_unique<testing::comfy::Server>(options);
    ASSERT_TRUE(server_->Start().ok());
    http_ = std::make_unique<http::Client>(server_->url());
  }

  // GET that must answer 200 with JSON.
  json GetJson(const std::string& path) {
    auto r = http_->Get(path);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return nullptr;
    EXPECT_EQ(r->status, 200) << path << ": " << r->body;
    return json::parse(r->body, nullptr, false);
  }
  http::Response Post(const std::string& path, const json& body) {
    auto r = http_->Post(path, body.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r.value() : http::Response{};
  }
  // POST /prompt; returns the response JSON (asserting 200).
  json Submit(const json& workflow, const std::string& client_id, const std::string& prompt_id,
              const json& extra_data = json::object()) {
    json req = {{"prompt", workflow}, {"client_id", client_id}, {"prompt_id", prompt_id}};
    if (!extra_data.empty()) req["extra_data"] = extra_data;
    auto r = Post("/prompt", req);
    EXPECT_EQ(r.status, 200) << r.body;
    return json::parse(r.body, nullptr, false);
  }
  // Polls /history/{id} until the entry exists; null on timeout.
  json WaitHistory(const std::string& prompt_id,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds(10000)) {
    json entry;
    WaitFor(
        [&] {
          json h = GetJson("/history/" + prompt_id);
          if (h.is_object() && h.contains(prompt_id)) entry = h[prompt_id];
          return !entry.is_null();
        },
        timeout);
    return entry;
  }
  std::filesystem::path out() const { return server_->output_dir(); }

  TempDir dir_;
  std::unique_ptr<testing::comfy::Server> server_;
  std::unique_ptr<http::Client> http_;
};

}  // namespace scenefarm::testing
