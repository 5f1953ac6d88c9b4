#include "server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <random>
#include <sstream>

#include "scenefarm/log.h"

namespace scenefarm::testing::comfy {
namespace fs = std::filesystem;

namespace {

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

int Reply(mg_connection* c, int status, const std::string& content_type, const std::string& body,
          const std::string& extra_headers = "") {
  mg_printf(c,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
            "Cache-Control: no-cache\r\n\r\n",
            status, Reason(status), content_type.c_str(), body.size(), extra_headers.c_str());
  if (!body.empty()) mg_write(c, body.data(), body.size());
  return status;
}

template <typename J>
int ReplyJson(mg_connection* c, int status, const J& j) {
  return Reply(c, status, "application/json; charset=utf-8",
               j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

// aiohttp's plain-text error pages.
int ReplyText(mg_connection* c, int status, const std::string& text) {
  return Reply(c, status, "text/plain; charset=utf-8", text);
}
int Ok(mg_connection* c) {
  return Reply(c, 200, "application/octet-stream", "");
}

std::string ReadBody(mg_connection* c) {
  std::string body;
  char buf[16384];
  int n = 0;
  while ((n = mg_read(c, buf, sizeof(buf))) > 0)
    body.append(buf, static_cast<size_t>(n));
  return body;
}

std::optional<std::string> QueryVar(const mg_request_info* ri, const char* name) {
  if (ri->query_string == nullptr) return std::nullopt;
  std::string buf(8192, '\0');
  const int n =
      mg_get_var(ri->query_string, std::strlen(ri->query_string), name, buf.data(), buf.size());
  if (n < 0) return std::nullopt;
  buf.resize(static_cast<size_t>(n));
  return buf;
}

std::string RandomHex(size_t n) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(n, '0');
  for (auto& ch : s)
    ch = kHex[rng() % 16];
  return s;
}

// ComfyUI answers 403 when Origin's host differs from a loopback Host (server.py:141-176).
bool OriginRefused(mg_connection* c) {
  const char* origin = mg_get_header(c, "Origin");
  if (origin == nullptr) return false;
  const char* host = mg_get_header(c, "Host");
  std::string o(origin);
  if (auto p = o.find("://"); p != std::string::npos) o = o.substr(p + 3);
  return host == nullptr || o != host;
}

}  // namespace

json Server::QueueItem::ToJson() const {
  json n =
      number == static_cast<int64_t>(number) ? json(static_cast<int64_t>(number)) : json(number);
  return json::array({n, prompt_id, prompt, extra_data, outputs});
}

Server::Server(ServerOptions options) : options_(std::move(options)) {
  output_dir_ = fs::absolute(options_.base_dir / "output").lexically_normal();
  input_dir_ = fs::absolute(options_.base_dir / "input").lexically_normal();
  temp_dir_ = fs::absolute(options_.base_dir / "temp").lexically_normal();
}

Server::~Server() {
  Stop();
}

std::string Server::url() const {
  return "http://" + options_.host + ":" + std::to_string(port_);
}

Status Server::Start() {
  std::error_code ec;
  for (const auto& d : {output_dir_, input_dir_, temp_dir_})
    fs::create_directories(d, ec);
  if (ec) return Status::FailedPrecondition("cannot create " + options_.base_dir.string());
  mg_init_library(MG_FEATURES_WEBSOCKET);
  port_ = options_.port;
  NewOrderSeed();
  if (Status s = Listen(); !s.ok()) return s;
  executor_ = std::thread([this] { ExecutorLoop(); });
  timer_ = std::thread([this] { TimerLoop(); });
  return Status::Ok();
}

// civetweb's mg_stop waits for its master thread's poll() to time out (2 s in 1.15). A connection
// to the port wakes that poll at once, which saves two seconds per test server.
void Server::StopListening() {
  if (!ctx_) return;
  std::atomic<bool> done{false};
  std::thread poke([&] {
    while (!done) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      const int fd = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(port_));
      inet_pton(AF_INET, options_.host.c_str(), &addr.sin_addr);
      (void)!connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
      close(fd);
    }
  });
  ctx_.reset();
  done = true;
  poke.join();
}

Status Server::Listen() {
  const std::string ports = options_.host + ":" + std::to_string(port_);
  const std::string threads = std::to_string(options_.num_threads);
  const char* opts[] = {"listening_ports", ports.c_str(), "num_threads", threads.c_str(),
                        "enable_keep_alive", "yes",
                        // aiohttp (ComfyUI's server) sets TCP_NODELAY; without it a response
                        // written in two parts waits out the peer's delayed ACK (~40 ms).
                        "tcp_nodelay", "1", "request_timeout_ms", "600000", "websocket_timeout_ms",
                        "3600000", nullptr};
  mg_callbacks callbacks{};
  callbacks.begin_request = &Server::WaitForHandlers;
  handlers_ready_ = false;
  ctx_.reset(mg_start(&callbacks, this, opts));
  if (!ctx_) return Status::Unavailable("cannot listen on " + ports);
  mg_server_port sp[1];
  if (mg_get_server_ports(ctx_.get(), 1, sp) < 1) return Status::Internal("no listening port");
  port_ = sp[0].port;
  mg_set_request_handler(ctx_.get(), "/", &Server::OnRequest, this);
  for (const char* path : {"/ws", "/api/ws"}) {
    mg_set_websocket_handler(ctx_.get(), path, &Server::OnWsConnect, &Server::OnWsReady,
                             &Server::OnWsData, &Server::OnWsClose, this);
  }
  handlers_ready_ = true;
  return Status::Ok();
}

int Server::WaitForHandlers(mg_connection* conn) {
  auto* self = static_cast<Server*>(mg_get_user_data(mg_get_context(conn)));
  for (int i = 0; i < 2000 && !self->handlers_ready_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return 0;  // civetweb dispatches to the registered handlers
}

void Server::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    cv_.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(timer_mu_);
    timer_stopping_ = true;
    timer_cv_.notify_all();
  }
  if (executor_.joinable()) executor_.join();
  if (timer_.joinable()) timer_.join();
  StopListening();
}

Status Server::Restart(std::chrono::milliseconds down) {
  // Forget first, so the executor cannot start a pending prompt while the port closes; forget
  // again afterwards for requests that arrived during mg_stop.
  ForgetEverything();
  StopListening();  // closes every connection, WebSockets included
  ForgetEverything();
  std::this_thread::sleep_for(down);
  NewOrderSeed();  // a new ComfyUI process hashes its strings differently
  log::Info("comfyui_test_server_restarted", {{"port", port_}});
  return Listen();
}

void Server::NewOrderSeed() {
  uint64_t seed = 0;
  if (options_.output_order_seed) {
    seed = *options_.output_order_seed;
  } else {
    std::random_device rd;
    seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    order_seed_ = seed;
  }
  log::Info("comfyui_test_server_output_order",
            {{"seed", std::to_string(seed)}, {"fixed", options_.output_order_seed.has_value()}});
}

uint64_t Server::order_seed() {
  std::lock_guard<std::mutex> lock(mu_);
  return order_seed_;
}

void Server::ForgetEverything() {
  std::lock_guard<std::mutex> lock(mu_);
  generation_++;  // wakes and abandons the running prompt and any hanging request
  pending_.clear();
  running_.reset();
  history_.clear();
  history_order_.clear();
  cache_.clear();
  models_loaded_ = false;
  working_bytes_ = 0;
  next_number_ = 0;
  interrupt_ = false;
  last_node_id_.clear();
  cv_.notify_all();
}

int Server::OnRequest(mg_connection* conn, void* self) {
  return static_cast<Server*>(self)->HandleRequest(conn);
}

int Server::HandleRequest(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string method = ri->request_method;
  std::string path = ri->local_uri ? ri->local_uri : "/";
  const std::string body = ReadBody(conn);
  if (OriginRefused(conn)) return ReplyText(conn, 403, "403: Forbidden");
  if (path.rfind("/_test/", 0) == 0) return Control(conn, method, path, body);
  if (path == "/api" || path.rfind("/api/", 0) == 0) path = path.substr(4);
  if (path.empty()) path = "/";
  {
    std::lock_guard<std::mutex> lock(mu_);
    request_counts_[method + " " + (path.rfind("/history/", 0) == 0 ? "/history/{id}" : path)]++;
  }
  int fault_status = 0;
  std::optional<json> fault_body;
  if (ApplyHttpFault(conn, method, path, &fault_body, &fault_status)) {
    if (fault_body) return ReplyJson(conn, fault_status, *fault_body);
    return ReplyText(conn, fault_status,
                     std::to_string(fault_status) + " " + Reason(fault_status) +
                         "\n\nServer got itself in trouble");
  }
  try {
    return Dispatch(conn, method, path, body);
  } catch (const std::exception& e) {
    // aiohttp turns a handler exception (a body that is not JSON, say) into a bare 500.
    log::Warn("comfyui_test_server_handler_error", {{"path", path}, {"error", e.what()}});
    return ReplyText(conn, 500, "500 Internal Server Error\n\nServer got itself in trouble");
  }
}

bool Server::ApplyHttpFault(mg_connection*, const std::string& method, const std::string& path,
                            std::optional<json>* body_out, int* status_out) {
  std::unique_lock<std::mutex> lock(mu_);
  for (auto it = http_faults_.begin(); it != http_faults_.end(); ++it) {
    if ((!it->method.empty() && it->method != method) || it->path != path) continue;
    const HttpFault f = *it;
    if (f.count > 0 && --it->count == 0) http_faults_.erase(it);
    if (f.delay_ms > 0) {
      const uint64_t gen = generation_;
      cv_.wait_for(lock, std::chrono::milliseconds(f.delay_ms),
                   [&] { return stopping_ || gen != generation_; });
    }
    *status_out = f.status;
    *body_out = f.body;
    return f.status != 0;
  }
  return false;
}

int Server::Dispatch(mg_connection* conn, const std::string& method, const std::string& path,
                     const std::string& body) {
  const bool get = method == "GET";
  const bool post = method == "POST";
  if (path == "/prompt" && post) return PostPrompt(conn, body);
  if (path == "/prompt" && get) {
    std::lock_guard<std::mutex> lock(mu_);
    return ReplyJson(conn, 200, json{{"exec_info", {{"queue_remaining", QueueRemainingLocked()}}}});
  }
  if (path == "/queue" && get) return ReplyJson(conn, 200, QueueJson());
  if (path == "/queue" && post) return PostQueue(conn, body);
  if (path == "/history" && get) return GetHistory(conn, "");
  if (path == "/history" && post) return PostHistory(conn, body);
  if (path.rfind("/history/", 0) == 0 && get) return GetHistory(conn, path.substr(9));
  if (path == "/interrupt" && post) return PostInterrupt(conn, body);
  if (path == "/free" && post) return PostFree(conn, body);
  if (path == "/system_stats" && get) return ReplyJson(conn, 200, SystemStats());
  if (path == "/object_info" && get) {
    json info = ObjectInfo();
    if (!options_.done_marker_node) {
      info.erase(kSaveImageMarkerNode);
      info.erase(kVideoDoneMarkerNode);
    }
    return ReplyJson(conn, 200, info);
  }
  if (path.rfind("/object_info/", 0) == 0 && get) {
    const auto it = Registry().find(path.substr(13));
    if (it == Registry().end() || (!options_.done_marker_node && IsScenefarmMarkerNode(it->first)))
      return ReplyJson(conn, 200, json::object());
    return ReplyJson(conn, 200, json{{it->first, ObjectInfoFor(it->second)}});
  }
  if (path == "/view" && get) return GetView(conn);
  if (path == "/" && get) {
    return Reply(conn, 200, "text/html", "<html><body>scenefarm ComfyUI test server</body></html>");
  }
  return ReplyText(conn, 404, "404: Not Found");
}

int Server::PostPrompt(mg_connection* conn, const std::string& body) {
  json req = json::parse(body);  // not JSON: 500, as aiohttp's request.json() raising
  if (!req.is_object() || !req.contains("prompt")) {
    json error = {{"type", "no_prompt"},
                  {"message", "No prompt provided"},
                  {"details", "No prompt provided"},
                  {"extra_info", json::object()}};
    return ReplyJson(conn, 400, json{{"error", error}, {"node_errors", json::object()}});
  }
  QueueItem item;
  item.prompt = req["prompt"];
  if (!options_.done_marker_node && item.prompt.is_object()) {
    for (const auto& [id, node] : item.prompt.items()) {
      const std::string type = node.is_object() ? node.value("class_type", "") : "";
      if (IsScenefarmMarkerNode(type)) {
        json error = {{"type", "invalid_prompt"},
                      {"message", "Cannot execute because node " + type + " does not exist."},
                      {"details", "Node ID '#" + id + "'"},
                      {"extra_info", json::object()}};
        return ReplyJson(conn, 400, json{{"error", error}, {"node_errors", json::object()}});
      }
    }
  }
  const Validation v = ValidatePrompt(item.prompt);
  if (!v.ok) {
    log::Warn("comfyui_test_server_invalid_prompt", {{"error", v.error}});
    return ReplyJson(conn, 400, json{{"error", v.error}, {"node_errors", v.node_errors}});
  }
  item.prompt_id = req.contains("prompt_id") && req["prompt_id"].is_string()
                       ? req["prompt_id"].get<std::string>()
                       : RandomHex(8) + "-" + RandomHex(4) + "-" + RandomHex(4) + "-" +
                             RandomHex(4) + "-" + RandomHex(12);
  item.extra_data = req.value("extra_data", json::object());
  if (req.contains("client_id")) item.extra_data["client_id"] = req["client_id"];
  item.outputs = v.good_outputs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (req.contains("number") && req["number"].is_number()) {
      item.number = req["number"].get<double>();
    } else {
      item.number = static_cast<double>(next_number_);
      if (req.value("front", false)) item.number = -item.number;
      next_number_++;
    }
    pending_.push_back(item);
    cv_.notify_all();
  }
  BroadcastStatus();
  json number = item.number == static_cast<int64_t>(item.number)
                    ? json(static_cast<int64_t>(item.number))
                    : json(item.number);
  return ReplyJson(
      conn, 200,
      json{{"prompt_id", item.prompt_id}, {"number", number}, {"node_errors", v.node_errors}});
}

int Server::GetHistory(mg_connection* conn, const std::string& prompt_id) {
  const mg_request_info* ri = mg_get_request_info(conn);
  std::lock_guard<std::mutex> lock(mu_);
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  if (!prompt_id.empty()) {
    if (auto it = history_.find(prompt_id); it != history_.end()) out[prompt_id] = it->second;
    return ReplyJson(conn, 200, out);
  }
  // PromptQueue.get_history: max_items alone means the newest max_items entries.
  std::optional<int64_t> max_items;
  int64_t offset = -1;
  if (auto m = QueryVar(ri, "max_items")) max_items = std::stoll(*m);
  if (auto o = QueryVar(ri, "offset")) offset = std::stoll(*o);
  if (offset < 0 && max_items) offset = static_cast<int64_t>(history_order_.size()) - *max_items;
  int64_t i = 0;
  for (const auto& id : history_order_) {
    if (i++ < offset) continue;
    out[id] = history_.at(id);
    if (max_items && static_cast<int64_t>(out.size()) >= *max_items) break;
  }
  return ReplyJson(conn, 200, out);
}

int Server::PostHistory(mg_connection* conn, const std::string& body) {
  const json req = json::parse(body);
  std::lock_guard<std::mutex> lock(mu_);
  if (req.value("clear", false)) {
    history_.clear();
    history_order_.clear();
  }
  if (req.contains("delete") && req["delete"].is_array()) {
    for (const auto& id : req["delete"]) {
      if (!id.is_string() || !history_.erase(id.get<std::string>())) continue;
      std::erase(history_order_, id.get<std::string>());
    }
  }
  return Ok(conn);
}

int Server::PostQueue(mg_connection* conn, const std::string& body) {
  const json req = json::parse(body);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (req.value("clear", false)) pending_.clear();
    if (req.contains("delete") && req["delete"].is_array()) {
      for (const auto& id : req["delete"]) {
        std::erase_if(pending_, [&](const QueueItem& q) { return id == q.prompt_id; });
      }
    }
  }
  BroadcastStatus();
  return Ok(conn);
}

int Server::PostInterrupt(mg_connection* conn, const std::string& body) {
  json req = body.empty() ? json::object() : json::parse(body);
  std::lock_guard<std::mutex> lock(mu_);
  if (running_) {
    const bool targeted = req.is_object() && req.contains("prompt_id");
    if (!targeted || req["prompt_id"] == running_->prompt_id) {
      interrupt_ = true;
      cv_.notify_all();
    }
  }
  return Ok(conn);
}

int Server::PostFree(mg_connection* conn, const std::string& body) {
  const json req = body.empty() ? json::object() : json::parse(body);
  std::lock_guard<std::mutex> lock(mu_);
  unload_models_ = unload_models_ || req.value("unload_models", false);
  free_memory_ = free_memory_ || req.value("free_memory", false);
  cv_.notify_all();  // applied by the executor when no prompt runs, as ComfyUI's prompt worker
  return Ok(conn);
}

int Server::GetView(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const auto filename = QueryVar(ri, "filename");
  if (!filename) return ReplyText(conn, 404, "404: Not Found");
  if (filename->empty() || (*filename)[0] == '/' || filename->find("..") != std::string::npos) {
    return ReplyText(conn, 400, "400: Bad Request");
  }
  const std::string type = QueryVar(ri, "type").value_or("output");
  fs::path dir = type == "output"  ? output_dir_
                 : type == "input" ? input_dir_
                 : type == "temp"  ? temp_dir_
                                   : fs::path();
  if (dir.empty()) return ReplyText(conn, 400, "400: Bad Request");
  if (auto sub = QueryVar(ri, "subfolder")) {
    const fs::path full = dir / *sub;
    if (!PathIsWithin(dir, full)) return ReplyText(conn, 403, "403: Forbidden");
    dir = full;
  }
  const fs::path file = dir / fs::path(*filename).filename();
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return ReplyText(conn, 404, "404: Not Found");
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string ext = file.extension().string();
  const std::string ct = ext == ".png"    ? "image/png"
                         : ext == ".json" ? "application/json"
                         : ext == ".txt"  ? "text/plain"
                                          : "application/octet-stream";
  return Reply(conn, 200, ct, ss.str(),
               "Content-Disposition: filename=\"" + file.filename().string() + "\"\r\n");
}

int Server::QueueRemainingLocked() const {
  return static_cast<int>(pending_.size()) + (running_ ? 1 : 0);
}

json Server::QueueJson() {
  std::lock_guard<std::mutex> lock(mu_);
  json running = json::array();
  json pending = json::array();
  if (running_) running.push_back(running_->ToJson());
  std::vector<const QueueItem*> sorted;
  for (const auto& q : pending_)
    sorted.push_back(&q);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const QueueItem* a, const QueueItem* b) { return a->number < b->number; });
  for (const auto* q : sorted)
    pending.push_back(q->ToJson());
  return {{"queue_running", running}, {"queue_pending", pending}};
}

json Server::SystemStats() {
  const int64_t page = sysconf(_SC_PAGESIZE);
  const int64_t ram_total = sysconf(_SC_PHYS_PAGES) * page;
  const int64_t ram_free = sysconf(_SC_AVPHYS_PAGES) * page;
  json devices = json::array();
  std::lock_guard<std::mutex> lock(mu_);
  if (options_.device == "cpu") {
    devices.push_back({{"name", "cpu"},
                       {"type", "cpu"},
                       {"index", nullptr},
                       {"vram_total", ram_total},
                       {"vram_free", ram_free},
                       {"torch_vram_total", ram_total},
                       {"torch_vram_free", ram_free}});
  } else {
    for (int i = 0; i < options_.gpu_count; ++i) {
      const int64_t free = i == 0 ? VramFreeLocked() : options_.vram_total_bytes - (512LL << 20);
      const int64_t torch_total = i == 0 && models_loaded_ ? options_.model_bytes : 0;
      devices.push_back(
          {{"name", "cuda:" + std::to_string(i) + " " + options_.gpu_name + " : cudaMallocAsync"},
           {"type", "cuda"},
           {"index", i},
           {"vram_total", options_.vram_total_bytes},
           {"vram_free", free},
           {"torch_vram_total", torch_total},
           {"torch_vram_free", i == 0 ? torch_total / 8 : 0}});
    }
  }
  json system = {{"os", "posix"},
                 {"ram_total", ram_total},
                 {"ram_free", ram_free},
                 {"comfyui_version", "0.8.0"},
                 {"python_version", "3.12.3 (main) [GCC 13.2.0]"},
                 {"pytorch_version", options_.device == "cpu" ? "2.9.0+cpu" : "2.9.0+cu128"},
                 {"embedded_python", false},
                 {"argv", {"main.py", "--listen", options_.host, "--port", std::to_string(port_)}}};
  return {{"system", system}, {"devices", devices}};
}

int64_t Server::VramFreeLocked() const {
  const int64_t used = (512LL << 20) + (models_loaded_ ? options_.model_bytes : 0) + working_bytes_;
  return std::max<int64_t>(0, options_.vram_total_bytes - used);
}

// ---- WebSocket ----

int Server::OnWsConnect(const mg_connection*, void*) {
  return 0;
}

void Server::OnWsReady(mg_connection* conn, void* user) {
  auto* self = static_cast<Server*>(user);
  const mg_request_info* ri = mg_get_request_info(conn);
  std::string sid = QueryVar(ri, "clientId").value_or("");
  if (sid.empty()) sid = RandomHex(32);
  {
    std::lock_guard<std::mutex> lock(self->ws_mu_);
    self->sockets_[sid] = conn;  // a reused clientId replaces the old socket, as ComfyUI does
    self->socket_sids_[conn] = sid;
    self->ws_connections_total_++;
  }
  json status;
  std::string resume_node;
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    status = {{"status", {{"exec_info", {{"queue_remaining", self->QueueRemainingLocked()}}}}},
              {"sid", sid}};
    if (self->running_ && self->running_client_id_ == sid) resume_node = self->last_node_id_;
  }
  self->Send("status", status, sid);
  // server.py: a reconnecting client of the running prompt is told the current node.
  if (!resume_node.empty()) self->Send("executing", {{"node", resume_node}}, sid);
}

int Server::OnWsData(mg_connection*, int bits, char*, size_t, void*) {
  return (bits & 0x0f) == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE ? 0 : 1;
}

void Server::OnWsClose(const mg_connection* conn, void* user) {
  auto* self = static_cast<Server*>(user);
  std::lock_guard<std::mutex> lock(self->ws_mu_);
  auto it = self->socket_sids_.find(conn);
  if (it == self->socket_sids_.end()) return;
  auto s = self->sockets_.find(it->second);
  if (s != self->sockets_.end() && s->second == conn) self->sockets_.erase(s);
  self->socket_sids_.erase(it);
}

void Server::Send(const std::string& event, const json& data, const std::string& sid) {
  const std::string text = json{{"type", event}, {"data", data}}.dump();
  std::lock_guard<std::mutex> lock(ws_mu_);
  for (const auto& [id, conn] : sockets_) {
    if (!sid.empty() && id != sid) continue;
    mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_TEXT, text.data(), text.size());
  }
}

void Server::BroadcastStatus() {
  int remaining = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    remaining = QueueRemainingLocked();
  }
  Send("status", {{"status", {{"exec_info", {{"queue_remaining", remaining}}}}}}, "");
}

void Server::DropSockets(const std::string& sid) {
  std::lock_guard<std::mutex> lock(ws_mu_);
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    if (!sid.empty() && it->first != sid) {
      ++it;
      continue;
    }
    // A close frame with code 1011; the socket is forgotten at once, so nothing more reaches it.
    const char payload[] = {'\x03', '\xf3'};
    mg_websocket_write(it->second, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, payload, 2);
    it = sockets_.erase(it);
  }
}

// ---- timer ----

void Server::Defer(std::chrono::milliseconds delay, std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(timer_mu_);
  timers_.emplace(std::chrono::steady_clock::now() + delay, std::move(fn));
  timer_cv_.notify_all();
}

void Server::TimerLoop() {
  std::unique_lock<std::mutex> lock(timer_mu_);
  while (!timer_stopping_) {
    if (timers_.empty()) {
      timer_cv_.wait(lock);
      continue;
    }
    const auto due = timers_.begin()->first;
    if (std::chrono::steady_clock::now() < due) {
      timer_cv_.wait_until(lock, due);
      continue;
    }
    auto fn = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    lock.unlock();
    fn();
    lock.lock();
  }
}

}  // namespace scenefarm::testing::comfy
