// The prompt worker of the test server: runs queued prompts one at a time with ComfyUI's event
// order, classic caching, history entries and injected faults.
#include <civetweb.h>

#include <set>

#include "scenefarm/log.h"
#include "server.h"

namespace scenefarm::testing::comfy {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

class Server::PromptRun : public NodeContext {
 public:
  PromptRun(Server& server, QueueItem item, uint64_t generation, PromptFaults faults,
            uint64_t order_seed)
      : s_(server),
        item_(std::move(item)),
        gen_(generation),
        faults_(std::move(faults)),
        order_seed_(order_seed) {
    client_id_ = item_.extra_data.value("client_id", "");
  }

  void Run();

  // NodeContext
  const std::filesystem::path& output_dir() const override { return s_.output_dir_; }
  const std::filesystem::path& temp_dir() const override { return s_.temp_dir_; }
  const PromptFaults& faults() const override { return faults_; }
  const json& prompt() const override { return item_.prompt; }
  void Sleep(std::chrono::milliseconds d) override;
  void Progress(int value, int max) override {
    SendEvent(
        "progress",
        {{"value", value}, {"max", max}, {"prompt_id", item_.prompt_id}, {"node", current_node_}});
  }
  void LoadModel() override {
    std::lock_guard<std::mutex> lock(s_.mu_);
    s_.models_loaded_ = true;
  }
  void UseWorkingMemory(int64_t bytes) override {
    std::lock_guard<std::mutex> lock(s_.mu_);
    s_.working_bytes_ = bytes;
  }
  void Defer(std::chrono::milliseconds delay, std::function<void()> fn) override {
    s_.Defer(delay, std::move(fn));
  }

 private:
  bool Current() const { return s_.generation_.load() == gen_; }
  // An event about this prompt: to its client only, and only if it has one.
  void SendEvent(const std::string& event, const json& data, bool record = false);
  std::vector<std::string> ExecutionOrder() const;
  std::string Signature(const std::string& id, std::map<std::string, std::string>& memo) const;
  void RunNode(const std::string& id, bool cached);
  ResolvedInputs Resolve(const json& inputs) const;
  void Finish(const std::string& status_str, bool completed);
  json ErrorData(const NodeException& e) const;

  Server& s_;
  QueueItem item_;
  const uint64_t gen_;
  const PromptFaults faults_;
  const uint64_t order_seed_;
  std::string client_id_;
  std::string current_node_;
  int events_sent_ = 0;
  bool first_executed_ = true;
  json messages_ = json::array();
  nlohmann::ordered_json outputs_ = nlohmann::ordered_json::object();
  nlohmann::ordered_json meta_ = nlohmann::ordered_json::object();
  std::map<std::string, NodeResult> results_;
  std::map<std::string, std::string> signatures_;
  std::vector<std::string> executed_;
};

void Server::PromptRun::SendEvent(const std::string& event, const json& data, bool record) {
  if (record) messages_.push_back(json::array({event, data}));
  if (client_id_.empty() || !Current()) return;
  s_.Send(event, data, client_id_);
  if (++events_sent_ == faults_.ws_drop_after_events) {
    log::Info("comfyui_test_server_ws_drop", {{"prompt_id", item_.prompt_id}});
    s_.DropSockets(client_id_);
  }
}

void Server::PromptRun::Sleep(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(s_.mu_);
  s_.cv_.wait_for(lock, d, [&] { return s_.interrupt_ || s_.stopping_ || !Current(); });
  if (s_.interrupt_ || s_.stopping_ || !Current()) throw Interrupted{};
}

std::vector<std::string> Server::PromptRun::ExecutionOrder() const {
  // As ComfyUI: the output nodes in the order of a set of string ids in this process (see
  // OrderOutputs), each preceded by the nodes it depends on that have not run yet.
  const std::vector<std::string> outputs = OrderOutputs(item_.outputs, order_seed_);
  std::vector<std::string> order;
  std::set<std::string> seen;
  std::function<void(const std::string&)> visit = [&](const std::string& id) {
    if (!seen.insert(id).second) return;
    for (const auto& [name, val] : item_.prompt[id]["inputs"].items()) {
      if (val.is_array() && val.size() == 2) {
        visit(val[0].is_string() ? val[0].get<std::string>() : val[0].dump());
      }
    }
    order.push_back(id);
  };
  for (const auto& o : outputs)
    visit(o);
  return order;
}

std::string Server::PromptRun::Signature(const std::string& id,
                                         std::map<std::string, std::string>& memo) const {
  if (auto it = memo.find(id); it != memo.end()) return it->second;
  json sig = {{"class_type", item_.prompt[id]["class_type"]}, {"inputs", json::object()}};
  for (const auto& [name, val] : item_.prompt[id]["inputs"].items()) {
    if (val.is_array() && val.size() == 2) {
      const std::string up = val[0].is_string() ? val[0].get<std::string>() : val[0].dump();
      sig["inputs"][name] = {{"link", Signature(up, memo)}, {"slot", val[1]}};
    } else {
      sig["inputs"][name] = val;
    }
  }
  return memo[id] = sig.dump();
}

ResolvedInputs Server::PromptRun::Resolve(const json& inputs) const {
  ResolvedInputs r;
  for (const auto& [name, val] : inputs.items()) {
    if (val.is_array() && val.size() == 2) {
      const std::string up = val[0].is_string() ? val[0].get<std::string>() : val[0].dump();
      const NodeResult& res = results_.at(up);
      const size_t slot = val[1].get<size_t>();
      if (slot < res.outputs.size() && res.outputs[slot]) {
        r.images[name] = res.outputs[slot];
      } else {
        r.values[name] = res.values.at(slot);
      }
    } else {
      r.values[name] = val;
    }
  }
  return r;
}

void Server::PromptRun::RunNode(const std::string& id, bool cached) {
  const NodeDef& def = Registry().at(item_.prompt[id]["class_type"].get<std::string>());
  NodeResult result;
  if (cached) {
    std::lock_guard<std::mutex> lock(s_.mu_);
    result = s_.cache_.at(signatures_.at(id)).result;
  } else {
    current_node_ = id;
    {
      std::lock_guard<std::mutex> lock(s_.mu_);
      s_.last_node_id_ = id;
    }
    SendEvent("executing", {{"node", id}, {"display_node", id}, {"prompt_id", item_.prompt_id}});
    if (first_executed_) {
      first_executed_ = false;
      if (faults_.hang_ms > 0) Sleep(std::chrono::milliseconds(faults_.hang_ms));
      if (faults_.error == "oom") {
        const bool cpu = s_.options_.device == "cpu";
        throw NodeException(cpu ? "RuntimeError" : "torch.OutOfMemoryError",
                            cpu ? "DefaultCPUAllocator: can't allocate memory: you tried to "
                                  "allocate 17179869184 bytes. Error code 12 (Cannot allocate "
                                  "memory)\n"
                                : "Allocation on device \nThis error means you ran out of memory "
                                  "on your GPU.\n\nTIPS: If the workflow worked before you might "
                                  "have accidentally set the batch_size to a large number.\n");
      }
      if (faults_.error == "runtime") {
        throw NodeException("RuntimeError", "scenefarm test fault: node " + id + " raised\n");
      }
    }
    result = def.execute(*this, id, Resolve(item_.prompt[id]["inputs"]));
    std::lock_guard<std::mutex> lock(s_.mu_);
    s_.working_bytes_ = 0;
    s_.nodes_executed_++;
    s_.nodes_executed_by_class_[item_.prompt[id]["class_type"].get<std::string>()]++;
    s_.cache_[signatures_.at(id)] = {result};
  }
  results_[id] = result;
  executed_.push_back(id);
  if (!result.ui.is_null()) {
    outputs_[id] = result.ui;
    meta_[id] = {
        {"node_id", id}, {"display_node", id}, {"parent_node", nullptr}, {"real_node_id", id}};
    SendEvent("executed", {{"node", id},
                           {"display_node", id},
                           {"output", result.ui},
                           {"prompt_id", item_.prompt_id}});
  }
}

json Server::PromptRun::ErrorData(const NodeException& e) const {
  json inputs = json::object();
  for (const auto& [name, val] : item_.prompt[current_node_]["inputs"].items()) {
    if (!val.is_array()) inputs[name] = json::array({val.is_string() ? val : json(val.dump())});
  }
  return {{"prompt_id", item_.prompt_id},
          {"node_id", current_node_},
          {"node_type", item_.prompt[current_node_]["class_type"]},
          {"executed", executed_},
          {"exception_message", e.what()},
          {"exception_type", e.exception_type},
          {"traceback",
           {"  File \"/ComfyUI/execution.py\", line 510, in execute\n    output_data, "
            "output_ui, has_subgraph, has_pending_tasks = await get_output_data(...)\n"}},
          {"current_inputs", inputs},
          {"current_outputs", executed_},
          {"timestamp", NowMs()}};
}

void Server::PromptRun::Run() {
  const std::vector<std::string> order = ExecutionOrder();
  std::vector<std::string> cached;
  {
    // Classic cache: only the nodes of the prompt that ran last survive.
    std::lock_guard<std::mutex> lock(s_.mu_);
    std::map<std::string, std::string> memo;
    std::set<std::string> keep;
    for (const auto& id : order)
      keep.insert(signatures_[id] = Signature(id, memo));
    std::erase_if(s_.cache_, [&](const auto& kv) { return !keep.count(kv.first); });
    for (const auto& id : order) {
      if (s_.cache_.count(signatures_[id])) cached.push_back(id);
    }
  }
  const std::string& pid = item_.prompt_id;
  SendEvent("execution_start", {{"prompt_id", pid}, {"timestamp", NowMs()}}, true);
  SendEvent("execution_cached", {{"nodes", cached}, {"prompt_id", pid}, {"timestamp", NowMs()}},
            true);
  try {
    for (const auto& id : order) {
      RunNode(id, std::find(cached.begin(), cached.end(), id) != cached.end());
    }
    SendEvent("execution_success", {{"prompt_id", pid}, {"timestamp", NowMs()}}, true);
    if (faults_.history_delay_ms > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(faults_.history_delay_ms));
    }
    Finish("success", true);
  } catch (const Interrupted&) {
    if (!Current() || s_.stopping_) return;  // restarted or stopping: forgotten, no history
    json data = {{"prompt_id", pid},
                 {"node_id", current_node_},
                 {"node_type", current_node_.empty() ? json(nullptr)
                                                     : item_.prompt[current_node_]["class_type"]},
                 {"executed", executed_},
                 {"timestamp", NowMs()}};
    messages_.push_back(json::array({"execution_interrupted", data}));
    s_.Send("execution_interrupted", data, client_id_);  // broadcast when there is no client
    outputs_ = nlohmann::ordered_json::object();
    Finish("error", false);
  } catch (const NodeException& e) {
    if (e.exception_type == "torch.OutOfMemoryError") {
      std::lock_guard<std::mutex> lock(s_.mu_);
      s_.models_loaded_ = false;  // ComfyUI unloads every model after an OOM
      s_.working_bytes_ = 0;
    }
    SendEvent("execution_error", ErrorData(e), true);
    outputs_ = nlohmann::ordered_json::object();
    Finish("error", false);
  }
}

void Server::PromptRun::Finish(const std::string& status_str, bool completed) {
  {
    std::lock_guard<std::mutex> lock(s_.mu_);
    if (!Current()) return;
    nlohmann::ordered_json entry;
    entry["prompt"] = item_.ToJson();
    entry["outputs"] = outputs_;
    entry["status"] = {
        {"status_str", status_str}, {"completed", completed}, {"messages", messages_}};
    entry["meta"] = completed ? meta_ : nlohmann::ordered_json::object();
    if (s_.history_.count(item_.prompt_id)) std::erase(s_.history_order_, item_.prompt_id);
    s_.history_[item_.prompt_id] = entry;
    s_.history_order_.push_back(item_.prompt_id);
    while (s_.history_order_.size() > s_.options_.history_max) {
      s_.history_.erase(s_.history_order_.front());
      s_.history_order_.erase(s_.history_order_.begin());
    }
    s_.running_.reset();
    s_.last_node_id_.clear();
    s_.working_bytes_ = 0;
    s_.prompts_executed_++;
  }
  s_.BroadcastStatus();
  if (!client_id_.empty()) {
    s_.Send("executing", {{"node", nullptr}, {"prompt_id", item_.prompt_id}}, client_id_);
  }
}

PromptFaults Server::TakePromptFaults(const json& extra_data) {
  if (extra_data.contains("scenefarm_test"))
    return PromptFaults::FromJson(extra_data["scenefarm_test"]);
  std::lock_guard<std::mutex> lock(mu_);
  if (!prompt_faults_.is_object()) return {};
  const PromptFaults f = PromptFaults::FromJson(prompt_faults_);
  const int count = prompt_faults_.value("count", 1);
  if (count == 1) prompt_faults_ = nullptr;
  if (count > 1) prompt_faults_["count"] = count - 1;
  return f;
}

void Server::ApplyFreeFlagsLocked() {
  if (free_memory_) cache_.clear();
  if (free_memory_ || unload_models_) models_loaded_ = false;
  free_memory_ = unload_models_ = false;
}

void Server::ExecutorLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock,
             [&] { return stopping_ || !pending_.empty() || free_memory_ || unload_models_; });
    if (stopping_) return;
    ApplyFreeFlagsLocked();
    if (pending_.empty()) continue;
    auto next = std::min_element(
        pending_.begin(), pending_.end(),
        [](const QueueItem& a, const QueueItem& b) { return a.number < b.number; });
    QueueItem item = std::move(*next);
    pending_.erase(next);
    running_ = item;
    running_client_id_ = item.extra_data.value("client_id", "");
    interrupt_ = false;
    const uint64_t gen = generation_;
    const uint64_t seed = order_seed_;
    lock.unlock();
    BroadcastStatus();
    PromptRun run(*this, item, gen, TakePromptFaults(item.extra_data), seed);
    run.Run();
    lock.lock();
    if (gen == generation_) running_.reset();
  }
}

// ---- /_test/ control endpoints ----

int Server::Control(mg_connection* conn, const std::string& method, const std::string& path,
                    const std::string& body) {
  auto reply = [&](int status, const json& j) {
    const std::string text = j.dump();
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
              status, status == 200 ? "OK" : "Error", text.size());
    mg_write(conn, text.data(), text.size());
    return status;
  };
  const json req = body.empty() ? json::object() : json::parse(body, nullptr, false);
  if (req.is_discarded()) return reply(400, {{"error", "body is not JSON"}});
  if (path == "/_test/faults" && method == "POST") {
    std::lock_guard<std::mutex> lock(mu_);
    http_faults_.clear();
    for (const auto& f : req.value("http", json::array())) {
      http_faults_.push_back({f.value("method", ""), f.value("path", ""), f.value("status", 0),
                              f.value("delay_ms", 0), f.value("count", 1),
                              f.contains("body") ? std::optional<json>(f["body"]) : std::nullopt});
    }
    prompt_faults_ = req.value("prompt", json(nullptr));
    return reply(200, {{"ok", true}});
  }
  if (path == "/_test/restart" && method == "POST") {
    const auto down = std::chrono::milliseconds(req.value("down_ms", 0));
    // Later than this reply: mg_stop resets open connections, and this one must get its answer.
    Defer(std::chrono::milliseconds(200), [this, down] { (void)Restart(down); });
    return reply(200, {{"ok", true}});
  }
  if (path == "/_test/ws/send" && method == "POST") {
    // A raw text frame, as a ComfyUI (or a custom node) sending an event of the wrong shape.
    const std::string text = req.value("text", "");
    const std::string sid = req.value("client_id", "");
    std::lock_guard<std::mutex> lock(ws_mu_);
    int sent = 0;
    for (const auto& [id, c] : sockets_) {
      if (!sid.empty() && id != sid) continue;
      mg_websocket_write(c, MG_WEBSOCKET_OPCODE_TEXT, text.data(), text.size());
      ++sent;
    }
    return reply(200, {{"ok", true}, {"sent", sent}});
  }
  if (path == "/_test/ws/drop" && method == "POST") {
    DropSockets(req.value("client_id", ""));
    return reply(200, {{"ok", true}});
  }
  if (path == "/_test/stats" && method == "GET") {
    std::lock_guard<std::mutex> lock(mu_);
    std::lock_guard<std::mutex> ws_lock(ws_mu_);
    return reply(200, {{"requests", request_counts_},
                       {"prompts_executed", prompts_executed_},
                       {"nodes_executed", nodes_executed_},
                       {"nodes_executed_by_class", nodes_executed_by_class_},
                       {"ws_clients", sockets_.size()},
                       {"ws_connections_total", ws_connections_total_},
                       {"models_loaded", models_loaded_},
                       {"cache_entries", cache_.size()}});
  }
  return reply(404, {{"error", "unknown control endpoint " + method + " " + path}});
}

}  // namespace scenefarm::testing::comfy
