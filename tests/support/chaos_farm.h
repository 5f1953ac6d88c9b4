// A small farm for the chaos, fault-matrix and load tests: a real redis-server, one in-process
// ComfyUI test server per worker slot (a worker per ComfyUI, as deployed), scenefarm-worker
// processes over them, and readers of what Redis, the event stream and the logs say afterwards.
#pragma once

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scenefarm/http_client.h"
#include "scenefarm/queue.h"
#include "server.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace scenefarm::testing {

// One entry of sf:{Q}:events: its stream id's time (ms, Redis' clock) and fields.
struct StreamEvent {
  int64_t ms = 0;
  std::map<std::string, std::string> f;
};

inline std::vector<StreamEvent> ReadEvents(redis::Client& client,
                                           const std::string& queue = "scenes") {
  std::vector<StreamEvent> out;
  std::string from = "-";
  while (true) {  // in pages, so a soak's stream does not come back as one huge reply
    auto r = client.Command({"XRANGE", "sf:{" + queue + "}:events", from, "+", "COUNT", "5000"});
    if (!r.ok() || r->elements.empty()) break;
    for (const auto& e : r->elements) {
      StreamEvent ev;
      const std::string& id = e.elements[0].str;
      ev.ms = std::stoll(id.substr(0, id.find('-')));
      const auto& kv = e.elements[1].elements;
      for (size_t i = 0; i + 1 < kv.size(); i += 2)
        ev.f[kv[i].str] = kv[i + 1].str;
      out.push_back(std::move(ev));
    }
    const std::string& last = r->elements.back().elements[0].str;
    from = "(" + last;
    if (r->elements.size() < 5000) break;
  }
  return out;
}

// JSON log lines of a file (lines that are not JSON are skipped).
inline std::vector<nlohmann::json> LogEvents(const std::filesystem::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_object()) out.push_back(std::move(j));
  }
  return out;
}

// How long a test may take scaled by an environment variable (its size), e.g. scenes.
inline int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : fallback;
}

struct FarmOptions {
  int slots = 4;
  int pipeline_depth = 1;  // 0: pipelining off
  bool websocket = true;
  double lease_seconds = 2;
  double heartbeat_seconds = 0.25;
  int retry_budget = 3;
  std::map<std::string, std::string> flags;  // worker flags set or overridden, e.g. {"--x", "1"}
};

// Worker slots, each with its ComfyUI test server; a slot's worker can be killed and started
// again (a new process, a new log file) under its old id or a new one.
class Farm {
 public:
  Farm(const std::filesystem::path& dir, std::string redis_url, FarmOptions options)
      : dir_(dir), redis_url_(std::move(redis_url)), options_(std::move(options)) {
    std::filesystem::create_directories(dir_ / "logs");
    for (int i = 0; i < options_.slots; ++i) {
      comfy::ServerOptions so;
      so.base_dir = dir_ / ("comfy" + std::to_string(i));
      so.num_threads = 16;
      slots_.push_back(std::make_unique<Slot>());
      slots_.back()->comfy = std::make_unique<comfy::Server>(so);
      if (!slots_.back()->comfy->Start().ok()) throw std::runtime_error("comfy test server");
      slots_.back()->http = std::make_unique<http::Client>(slots_.back()->comfy->url());
      slots_.back()->redis_url = redis_url_;
    }
  }
  ~Farm() {
    for (auto& s : slots_)
      if (s->proc) s->proc->Kill();
  }

  int size() const { return static_cast<int>(slots_.size()); }
  std::filesystem::path artifacts() const { return dir_ / "artifacts"; }
  comfy::Server& comfy(int slot) { return *slots_[slot]->comfy; }
  http::Client& comfy_http(int slot) { return *slots_[slot]->http; }
  Process& worker(int slot) { return *slots_[slot]->proc; }
  const std::string& worker_id(int slot) const { return slots_[slot]->id; }
  // The Redis URL of a slot's worker (e.g. through a StallProxy); used from its next start.
  void SetRedisUrl(int slot, const std::string& url) { slots_[slot]->redis_url = url; }
  std::filesystem::path log(int slot) const { return slots_[slot]->log; }
  const std::vector<std::filesystem::path>& all_logs() const { return logs_; }

  void Start(int slot, const std::string& id) {
    Slot& s = *slots_[slot];
    s.id = id;
    s.log = dir_ / "logs" / (id + "-" + std::to_string(logs_.size()) + ".log");
    logs_.push_back(s.log);
    std::map<std::string, std::string> flags = {
        {"--redis-url", s.redis_url},
        {"--comfyui-url", s.comfy->url()},
        {"--comfyui-output-dir", s.comfy->output_dir().string()},
        {"--artifacts-dir", artifacts().string()},
        {"--worker-id", id},
        {"--lease-seconds", std::to_string(options_.lease_seconds)},
        {"--heartbeat-seconds", std::to_string(options_.heartbeat_seconds)},
        {"--pipeline-depth", std::to_string(options_.pipeline_depth)},
        {"--comfyui-websocket", options_.websocket ? "1" : "0"},
        {"--idle-poll-seconds", "0.02"},
        {"--scene-history-poll-interval-seconds", "0.05"},
        {"--scene-retry-budget", std::to_string(options_.retry_budget)},
        {"--retry-backoff-seconds", "0.05"},
        {"--retry-backoff-max-seconds", "0.5"},
        {"--done-marker-wait-seconds", "5"},
        {"--stability-window-seconds", "0.1"},
        {"--gpu-source", "system_stats"},
        {"--log-level", "info"}};
    for (const auto& [k, v] : options_.flags)
      flags[k] = v;
    std::vector<std::string> argv = {SCENEFARM_WORKER_BIN};
    for (const auto& [k, v] : flags) {
      argv.push_back(k);
      argv.push_back(v);
    }
    s.proc = std::make_unique<Process>(argv, s.log);
  }
  // Waits until the slot's worker logged worker_started (its SIGTERM handler is installed).
  bool Started(int slot) {
    return WaitFor([&] { return Log(slot).find("\"worker_started\"") != std::string::npos; },
                   std::chrono::seconds(30));
  }
  std::string Log(int slot) const { return ReadFile(slots_[slot]->log); }
  void Kill(int slot) { slots_[slot]->proc->Kill(); }
  // SIGTERM and the exit status (0 for a clean drain).
  int Stop(int slot) {
    Started(slot);
    return slots_[slot]->proc->Stop(std::chrono::seconds(30));
  }

 private:
  struct Slot {
    std::unique_ptr<comfy::Server> comfy;
    std::unique_ptr<http::Client> http;
    std::unique_ptr<Process> proc;
    std::string id, redis_url;
    std::filesystem::path log;
  };
  std::filesystem::path dir_;
  std::string redis_url_;
  FarmOptions options_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::filesystem::path> logs_;
};

}  // namespace scenefarm::testing
