#include "scenefarm/comfyui.h"

#include <algorithm>

#include "scenefarm/log.h"

namespace scenefarm::comfyui {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

Status FromHttp(std::string_view what, const http::Response& r) {
  const std::string msg =
      std::string(what) + ": HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 300);
  if (r.status >= 500 || r.status == 429) return Status::Unavailable(msg);
  return Status::Internal(msg);
}

json ParseOrNull(const std::string& body) {
  return json::parse(body, nullptr, /*allow_exceptions=*/false);
}

}  // namespace

HistoryEntry ParseHistoryEntry(const json& entry) {
  HistoryEntry h;
  h.raw = entry;
  const json status = entry.value("status", json::object());
  h.success = status.value("status_str", "") == "success";
  const json outputs = entry.value("outputs", json::object());
  // Node ids are strings of numbers; order them numerically so frames keep the graph's order.
  std::vector<std::pair<std::string, const json*>> nodes;
  for (const auto& [id, out] : outputs.items())
    nodes.emplace_back(id, &out);
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
    return a.first.size() != b.first.size() ? a.first.size() < b.first.size() : a.first < b.first;
  });
  for (const auto& [id, out] : nodes) {
    if (!out->is_object()) continue;
    for (const auto& img : out->value("images", json::array())) {
      if (!img.is_object()) continue;
      h.images.push_back(
          {img.value("filename", ""), img.value("subfolder", ""), img.value("type", "output")});
    }
  }
  for (const auto& m : status.value("messages", json::array())) {
    if (!m.is_array() || m.size() != 2 || !m[1].is_object()) continue;
    const std::string ev = m[0].get<std::string>();
    const int64_t ts = m[1].value("timestamp", int64_t{0});
    if (ev == "execution_start") h.started_ms = ts;
    if (ev == "execution_success" || ev == "execution_error" || ev == "execution_interrupted")
      h.finished_ms = ts;
    if (ev == "execution_error") {
      h.error_type = m[1].value("exception_type", "");
      h.error_message = m[1].value("exception_message", "");
    }
    if (ev == "execution_interrupted") h.interrupted = true;
  }
  return h;
}

Client::Client(const std::string& base_url, http::ClientOptions options)
    : http_(base_url, options) {}

Result<http::Response> Client::Call(std::string_view method, std::string_view path,
                                    std::string_view body) {
  if (method == "GET") return http_.Get(path);
  return http_.Post(path, body);
}

Status Client::Submit(const json& workflow, const std::string& prompt_id,
                      const std::string& client_id, const json& extra_data) {
  json req = {{"prompt", workflow}, {"prompt_id", prompt_id}, {"client_id", client_id}};
  if (extra_data.is_object() && !extra_data.empty()) req["extra_data"] = extra_data;
  auto r = Call("POST", "/prompt", req.dump());
  if (!r.ok()) return r.status();
  if (r->status == 400) {
    // The workflow is wrong: retrying cannot help. The reason carries ComfyUI's own words.
    json body = ParseOrNull(r->body);
    std::string why = r->body.substr(0, 2000);
    if (body.is_object()) {
      json brief = {{"error", body.value("error", json::object())},
                    {"node_errors", body.value("node_errors", json::object())}};
      why = brief.dump();
    }
    return Status::InvalidArgument("ComfyUI refused the workflow (400): " + why);
  }
  if (r->status != 200) return FromHttp("POST /prompt", *r);
  return Status::Ok();
}

Result<std::optional<HistoryEntry>> Client::History(const std::string& prompt_id) {
  auto r = Call("GET", "/history/" + http::UrlEncode(prompt_id));
  if (!r.ok()) return r.status();
  if (r->status != 200) return FromHttp("GET /history", *r);
  json h = ParseOrNull(r->body);
  if (!h.is_object()) return Status::Unavailable("GET /history: not JSON");
  if (!h.contains(prompt_id)) return std::optional<HistoryEntry>();
  return std::optional<HistoryEntry>(ParseHistoryEntry(h[prompt_id]));
}

Result<std::string> Client::QueuePosition(const std::string& prompt_id) {
  auto r = Call("GET", "/queue");
  if (!r.ok()) return r.status();
  if (r->status != 200) return FromHttp("GET /queue", *r);
  json q = ParseOrNull(r->body);
  if (!q.is_object()) return Status::Unavailable("GET /queue: not JSON");
  for (const char* where : {"queue_running", "queue_pending"}) {
    for (const auto& item : q.value(where, json::array())) {
      if (item.is_array() && item.size() > 1 && item[1] == prompt_id)
        return std::string(where == std::string("queue_running") ? "running" : "pending");
    }
  }
  return std::string();
}

Status Client::Withdraw(const std::string& prompt_id) {
  Status first;
  auto a = Call("POST", "/queue", json{{"delete", {prompt_id}}}.dump());
  if (!a.ok()) first = a.status();
  auto b = Call("POST", "/interrupt", json{{"prompt_id", prompt_id}}.dump());
  if (!b.ok() && first.ok()) first = b.status();
  return first;
}

Status Client::Free(bool unload_models, bool free_memory) {
  auto r = Call("POST", "/free",
                json{{"unload_models", unload_models}, {"free_memory", free_memory}}.dump());
  if (!r.ok()) return r.status();
  return r->status == 200 ? Status::Ok() : FromHttp("POST /free", *r);
}

Result<json> Client::SystemStats() {
  auto r = Call("GET", "/system_stats");
  if (!r.ok()) return r.status();
  if (r->status != 200) return FromHttp("GET /system_stats", *r);
  json j = ParseOrNull(r->body);
  if (!j.is_object()) return Status::Unavailable("GET /system_stats: not JSON");
  return j;
}

Result<bool> Client::HasNode(const std::string& class_type) {
  auto r = Call("GET", "/object_info/" + http::UrlEncode(class_type));
  if (!r.ok()) return r.status();
  if (r->status != 200) return FromHttp("GET /object_info", *r);
  json j = ParseOrNull(r->body);
  return j.is_object() && j.contains(class_type);
}

Result<std::string> Client::View(const Image& image) {
  auto r = Call("GET", "/view?filename=" + http::UrlEncode(image.filename) +
                           "&subfolder=" + http::UrlEncode(image.subfolder) +
                           "&type=" + http::UrlEncode(image.type.empty() ? "output" : image.type));
  if (!r.ok()) return r.status();
  if (r->status == 404) return Status::NotFound("GET /view: " + image.filename + " not found");
  if (r->status != 200) return FromHttp("GET /view", *r);
  return std::move(r->body);
}

EventStream::EventStream(const std::string& base_url, std::string client_id) {
  auto url = http::ParseUrl(base_url);
  if (url.ok()) {
    host_ = url->host;
    port_ = url->port;
  }
  std::string prefix = url.ok() && url->path != "/" ? url->path : "";
  while (!prefix.empty() && prefix.back() == '/')
    prefix.pop_back();
  path_ = prefix + "/ws?clientId=" + http::UrlEncode(client_id);
}

EventStream::~EventStream() {
  Disable();
}

void EventStream::Disable() {
  disabled_ = true;
  if (ws_) ws_->Close();
  ws_.reset();
  std::lock_guard<std::mutex> lock(mu_);
  connected_ = false;
}

bool EventStream::EnsureConnected() {
  if (disabled_ || port_ == 0) return false;
  if (ws_ && !ws_->closed()) return true;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) return false;
  ws_.reset();  // a closed client: its reader thread has ended
  auto c = ws::Client::Connect(
      host_, port_, path_, [this](std::string_view t) { OnText(t); }, [this] { OnClose(); });
  if (!c.ok()) {
    next_attempt_ = now + backoff_;
    backoff_ = std::min<std::chrono::milliseconds>(backoff_ * 2, 5000ms);
    return false;
  }
  backoff_ = 100ms;
  ws_ = std::move(c).value();
  std::lock_guard<std::mutex> lock(mu_);
  connected_ = !ws_->closed();
  ++connections_;
  ++version_;
  cv_.notify_all();
  return connected_;
}

bool EventStream::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connected_;
}

int64_t EventStream::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_;
}

std::optional<PromptEvents> EventStream::Get(const std::string& prompt_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = prompts_.find(prompt_id);
  if (it == prompts_.end()) return std::nullopt;
  return it->second;
}

void EventStream::WaitForChange(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t seen = version_;
  cv_.wait_for(lock, timeout, [&] { return version_ != seen; });
}

void EventStream::Forget(const std::string& prompt_id) {
  std::lock_guard<std::mutex> lock(mu_);
  prompts_.erase(prompt_id);
}

void EventStream::OnClose() {
  std::lock_guard<std::mutex> lock(mu_);
  connected_ = false;
  ++version_;
  cv_.notify_all();
}

void EventStream::OnText(std::string_view text) {
  json ev = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!ev.is_object() || !ev.contains("type") || !ev["type"].is_string()) return;
  const std::string type = ev["type"];
  const json data = ev.value("data", json::object());
  if (!data.is_object() || !data.contains("prompt_id") || !data["prompt_id"].is_string()) return;
  const std::string prompt_id = data["prompt_id"];
  std::lock_guard<std::mutex> lock(mu_);
  if (prompts_.size() > 1000) prompts_.erase(prompts_.begin());  // bounded if never forgotten
  PromptEvents& p = prompts_[prompt_id];
  const auto now = std::chrono::steady_clock::now();
  if (type == "execution_start" || type == "execution_cached" || type == "progress" ||
      type == "progress_state" || type == "executed") {
    p.started = true;
  } else if (type == "executing") {
    p.started = true;
    if (data.contains("node") && data["node"].is_null()) {
      if (!p.ended()) p.ended_at = now;
      p.finished = true;
    }
  } else if (type == "execution_success") {
    if (!p.ended()) p.ended_at = now;
    p.success = true;
    p.success_ms = data.value("timestamp", int64_t{0});
  } else if (type == "execution_error") {
    if (!p.ended()) p.ended_at = now;
    p.error = true;
    p.error_type = data.value("exception_type", "");
    p.error_message = data.value("exception_message", "");
  } else if (type == "execution_interrupted") {
    if (!p.ended()) p.ended_at = now;
    p.interrupted = true;
  } else {
    return;  // status and unknown event types change nothing we wait on
  }
  ++version_;
  cv_.notify_all();
}

}  // namespace scenefarm::comfyui
