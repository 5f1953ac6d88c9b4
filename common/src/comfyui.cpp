#include "scenefarm/comfyui.h"

#include <algorithm>
#include <cmath>
#include <set>

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

// Reads o[key] into *out when present and not null; another type is an error naming `where`.
Status ReadString(const json& o, const char* key, std::string_view where, std::string* out) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return Status::Ok();
  if (!it->is_string())
    return Status::Internal(std::string(where) + "." + key + " is " + it->type_name() +
                            ", not a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

Status ReadInt(const json& o, const char* key, std::string_view where, int64_t* out) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return Status::Ok();
  if (!it->is_number())
    return Status::Internal(std::string(where) + "." + key + " is " + it->type_name() +
                            ", not a number");
  if (!it->is_number_float()) {
    *out = it->get<int64_t>();
    return Status::Ok();
  }
  const double d = it->get<double>();
  if (!(std::abs(d) < 9e18))  // NaN too: a cast out of range is undefined
    return Status::Internal(std::string(where) + "." + key + " is out of range");
  *out = static_cast<int64_t>(d);
  return Status::Ok();
}

// o[key] when it is an object (or absent/null: an empty one); another type is an error.
Result<json> ReadObject(const json& o, const char* key, std::string_view where) {
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return json::object();
  if (!it->is_object())
    return Status::Internal(std::string(where) + "." + key + " is " + it->type_name() +
                            ", not an object");
  return *it;
}

Status ReadImages(const json& outputs, HistoryEntry* h) {
  // Node ids are strings of numbers; order them numerically so frames keep the graph's order.
  std::vector<std::pair<std::string, const json*>> nodes;
  for (const auto& [id, out] : outputs.items())
    nodes.emplace_back(id, &out);
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
    return a.first.size() != b.first.size() ? a.first.size() < b.first.size() : a.first < b.first;
  });
  for (const auto& [id, out] : nodes) {
    if (!out->is_object()) continue;
    auto images = out->find("images");
    if (images == out->end() || images->is_null()) continue;
    const std::string where = "outputs." + id + ".images";
    if (!images->is_array()) return Status::Internal(where + " is not an array");
    for (const auto& img : *images) {
      if (!img.is_object()) continue;
      Image i{"", "", "output"};
      const std::pair<const char*, std::string*> fields[] = {
          {"filename", &i.filename}, {"subfolder", &i.subfolder}, {"type", &i.type}};
      for (const auto& [key, field] : fields) {
        if (Status s = ReadString(img, key, where, field); !s.ok()) return s;
      }
      h->images.push_back(std::move(i));
    }
  }
  return Status::Ok();
}

Status ReadMessages(const json& status, HistoryEntry* h) {
  auto messages = status.find("messages");
  if (messages == status.end() || messages->is_null()) return Status::Ok();
  if (!messages->is_array()) return Status::Internal("status.messages is not an array");
  for (const auto& m : *messages) {
    if (!m.is_array() || m.size() != 2 || !m[0].is_string() || !m[1].is_object()) continue;
    const std::string ev = m[0].get<std::string>();
    const std::string where = "status.messages." + ev;
    int64_t ts = 0;
    if (Status s = ReadInt(m[1], "timestamp", where, &ts); !s.ok()) return s;
    if (ev == "execution_start") h->started_ms = ts;
    if (ev == "execution_success" || ev == "execution_error" || ev == "execution_interrupted")
      h->finished_ms = ts;
    if (ev == "execution_error") {
      if (Status s = ReadString(m[1], "exception_type", where, &h->error_type); !s.ok()) return s;
      if (Status s = ReadString(m[1], "exception_message", where, &h->error_message); !s.ok())
        return s;
    }
    if (ev == "execution_interrupted") h->interrupted = true;
  }
  return Status::Ok();
}

}  // namespace

Result<HistoryEntry> ParseHistoryEntry(const json& entry) {
  if (!entry.is_object())
    return Status::Internal(std::string("the /history entry is ") + entry.type_name() +
                            ", not an object");
  HistoryEntry h;
  h.raw = entry;
  auto status = ReadObject(entry, "status", "entry");
  if (!status.ok()) return status.status();
  std::string status_str;
  if (Status s = ReadString(*status, "status_str", "status", &status_str); !s.ok()) return s;
  h.success = status_str == "success";
  auto outputs = ReadObject(entry, "outputs", "entry");
  if (!outputs.ok()) return outputs.status();
  if (Status s = ReadImages(*outputs, &h); !s.ok()) return s;
  if (Status s = ReadMessages(*status, &h); !s.ok()) return s;
  return h;
}

Result<std::optional<Event>> ParseEvent(std::string_view text) {
  const json ev = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!ev.is_object()) return Status::Internal("the event is not a JSON object");
  auto type = ev.find("type");
  if (type == ev.end() || !type->is_string())
    return Status::Internal("the event has no string \"type\"");
  static const std::set<std::string> kPromptEvents = {
      "execution_start", "execution_cached",  "progress",        "progress_state",       "executed",
      "executing",       "execution_success", "execution_error", "execution_interrupted"};
  Event out;
  out.type = type->get<std::string>();
  if (kPromptEvents.count(out.type) == 0) return std::optional<Event>();
  auto data = ReadObject(ev, "data", out.type);
  if (!data.ok()) return data.status();
  const std::string where = out.type + ".data";
  if (Status s = ReadString(*data, "prompt_id", where, &out.prompt_id); !s.ok()) return s;
  if (out.prompt_id.empty()) return std::optional<Event>();  // not about a prompt of ours
  out.node_null = data->contains("node") && (*data)["node"].is_null();
  if (Status s = ReadInt(*data, "timestamp", where, &out.timestamp); !s.ok()) return s;
  if (out.type == "execution_error") {
    if (Status s = ReadString(*data, "exception_type", where, &out.exception_type); !s.ok())
      return s;
    if (Status s = ReadString(*data, "exception_message", where, &out.exception_message); !s.ok())
      return s;
  }
  return std::optional<Event>(std::move(out));
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
  auto entry = ParseHistoryEntry(h[prompt_id]);
  if (!entry.ok()) {
    return Status::Internal("GET /history/" + prompt_id + ": " + entry.status().message());
  }
  return std::optional<HistoryEntry>(std::move(entry).value());
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

Status Client::Ping() {
  auto r = Call("GET", "/prompt");
  if (!r.ok()) return r.status();
  return r->status == 200 ? Status::Ok() : FromHttp("GET /prompt", *r);
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
  // civetweb's thread: nothing may throw out of here, and a malformed event is only skipped.
  auto ev = ParseEvent(text);
  if (!ev.ok()) {
    int64_t n = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      n = ++malformed_;
    }
    if (n <= 10 || n % 1000 == 0) {
      log::Warn("comfyui_event_malformed", {{"error", ev.status().message()},
                                            {"text", std::string(text.substr(0, 200))},
                                            {"count", n}});
    }
    return;
  }
  if (ev->has_value()) Apply(**ev);
}

void EventStream::Apply(const Event& ev) {
  std::lock_guard<std::mutex> lock(mu_);
  if (prompts_.size() > 1000) prompts_.erase(prompts_.begin());  // bounded if never forgotten
  PromptEvents& p = prompts_[ev.prompt_id];
  const auto now = std::chrono::steady_clock::now();
  if (ev.type == "executing") {
    p.started = true;
    if (ev.node_null) {
      if (!p.ended()) p.ended_at = now;
      p.finished = true;
    }
  } else if (ev.type == "execution_success") {
    if (!p.ended()) p.ended_at = now;
    p.success = true;
    p.success_ms = ev.timestamp;
  } else if (ev.type == "execution_error") {
    if (!p.ended()) p.ended_at = now;
    p.error = true;
    p.error_type = ev.exception_type;
    p.error_message = ev.exception_message;
  } else if (ev.type == "execution_interrupted") {
    if (!p.ended()) p.ended_at = now;
    p.interrupted = true;
  } else {
    p.started = true;  // execution_start, execution_cached, progress, progress_state, executed
  }
  ++version_;
  cv_.notify_all();
}

}  // namespace scenefarm::comfyui
