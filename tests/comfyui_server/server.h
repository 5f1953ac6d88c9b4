// The ComfyUI test server: a stand-in for ComfyUI 0.8.0 in tests and the demo, following
// ../shared/comfyui-api.md (routes, validation errors, event order, caching, history, /view),
// plus fault injection under /_test/ that real ComfyUI does not have. See README.md beside this
// file for the fault interface. Never used outside tests/ and the demo.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "nodes.h"
#include "scenefarm/handles.h"
#include "scenefarm/status.h"

namespace scenefarm::testing::comfy {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: a free port chosen by the kernel; port() tells which
  // output/, input/ and temp/ are created beneath.
  std::filesystem::path base_dir;
  std::string device = "cuda";  // "cuda" (simulated GPUs) or "cpu"
  int gpu_count = 1;
  std::string gpu_name = "NVIDIA GeForce RTX 3090";
  int64_t vram_total_bytes = 24LL << 30;
  int64_t model_bytes = 6LL << 30;  // held from the first render until /free or an OOM
  int num_threads = 64;             // each open WebSocket holds one civetweb thread
  size_t history_max = 10000;
  // false: a ComfyUI without scenefarm's custom nodes (ScenefarmSaveImage,
  // ScenefarmVideoDoneMarker) installed.
  bool done_marker_node = true;
  // The order of independent output nodes (OrderOutputs): fixed by this seed, else a random one
  // per start and restart, as ComfyUI's string hashing is per process. Logged either way.
  std::optional<uint64_t> output_order_seed;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Creates the directories, binds and starts the executor. kUnavailable if the port is taken.
  Status Start();
  void Stop();
  int port() const { return port_; }
  std::string url() const;
  const std::filesystem::path& output_dir() const { return output_dir_; }
  // The seed of this process's output-node order (see ServerOptions::output_order_seed).
  uint64_t order_seed();

  // A process restart as the worker sees it: the port refuses connections for `down`, every
  // WebSocket drops, and the queue, the running prompt, history and cache are forgotten.
  // Files on disk stay (SaveImage counters continue). Blocks until listening again.
  Status Restart(std::chrono::milliseconds down);

 private:
  class PromptRun;
  friend class PromptRun;

  struct QueueItem {
    double number = 0;
    std::string prompt_id;
    json prompt;
    json extra_data;
    std::vector<std::string> outputs;
    json ToJson() const;
  };
  struct HttpFault {
    std::string method;  // empty: any
    std::string path;    // after the /api prefix is stripped
    int status = 0;      // 0: answer normally (after delay_ms)
    int delay_ms = 0;
    int count = 1;  // 0: every matching request
    // When set (with a status), the answer's JSON body instead of aiohttp's error page: a
    // ComfyUI (or a proxy) answering with a document of the wrong shape.
    std::optional<json> body;
  };
  struct CachedNode {
    NodeResult result;
  };

  Status Listen();
  void StopListening();
  void ForgetEverything();
  void NewOrderSeed();
  // HTTP
  static int OnRequest(mg_connection* conn, void* self);
  int HandleRequest(mg_connection* conn);
  int Dispatch(mg_connection* conn, const std::string& method, const std::string& path,
               const std::string& body);
  bool ApplyHttpFault(mg_connection* conn, const std::string& method, const std::string& path,
                      std::optional<json>* body_out, int* status_out);
  int PostPrompt(mg_connection* conn, const std::string& body);
  int GetHistory(mg_connection* conn, const std::string& prompt_id);
  int PostHistory(mg_connection* conn, const std::string& body);
  int PostQueue(mg_connection* conn, const std::string& body);
  int PostInterrupt(mg_connection* conn, const std::string& body);
  int PostFree(mg_connection* conn, const std::string& body);
  int GetView(mg_connection* conn);
  int Control(mg_connection* conn, const std::string& method, const std::string& path,
              const std::string& body);
  json SystemStats();
  json QueueJson();
  int QueueRemainingLocked() const;
  // WebSocket
  static int OnWsConnect(const mg_connection* conn, void* self);
  static void OnWsReady(mg_connection* conn, void* self);
  static int OnWsData(mg_connection* conn, int bits, char* data, size_t len, void* self);
  static void OnWsClose(const mg_connection* conn, void* self);
  // Sends to one client (sid) or, with an empty sid, to every client.
  void Send(const std::string& event, const json& data, const std::string& sid);
  void BroadcastStatus();
  void DropSockets(const std::string& sid);  // empty: all
  // Executor
  void ExecutorLoop();
  void ApplyFreeFlagsLocked();
  int64_t VramFreeLocked() const;
  void TimerLoop();
  void Defer(std::chrono::milliseconds delay, std::function<void()> fn);
  PromptFaults TakePromptFaults(const json& extra_data);

  const ServerOptions options_;
  std::filesystem::path output_dir_, input_dir_, temp_dir_;
  int port_ = 0;
  MgContext ctx_;
  // civetweb accepts before mg_set_request_handler runs; requests in that gap wait here instead
  // of getting civetweb's own 404.
  std::atomic<bool> handlers_ready_{false};
  static int WaitForHandlers(mg_connection* conn);

  std::mutex mu_;
  std::condition_variable cv_;  // queue, interrupt, restart, stop
  bool stopping_ = false;
  std::atomic<uint64_t> generation_{0};  // bumped by Restart
  uint64_t order_seed_ = 0;
  int64_t next_number_ = 0;
  std::vector<QueueItem> pending_;
  std::optional<QueueItem> running_;
  std::string running_client_id_;
  std::string last_node_id_;
  bool interrupt_ = false;
  bool free_memory_ = false;
  bool unload_models_ = false;
  std::vector<std::string> history_order_;
  std::map<std::string, nlohmann::ordered_json> history_;
  std::map<std::string, CachedNode> cache_;  // node signature -> outputs (ComfyUI classic cache)
  std::vector<HttpFault> http_faults_;
  json prompt_faults_;  // {"count": N, ...PromptFaults}
  bool models_loaded_ = false;
  int64_t working_bytes_ = 0;
  std::map<std::string, int64_t> request_counts_;
  int64_t prompts_executed_ = 0;
  int64_t nodes_executed_ = 0;
  std::map<std::string, int64_t> nodes_executed_by_class_;
  int64_t ws_connections_total_ = 0;  // guarded by ws_mu_

  std::mutex ws_mu_;
  std::map<std::string, mg_connection*> sockets_;            // sid -> live socket
  std::map<const mg_connection*, std::string> socket_sids_;  // every open socket

  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  std::multimap<std::chrono::steady_clock::time_point, std::function<void()>> timers_;
  bool timer_stopping_ = false;

  std::thread executor_;
  std::thread timer_;
};

}  // namespace scenefarm::testing::comfy
