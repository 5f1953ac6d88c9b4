// ComfyUI's API as ../shared/comfyui-api.md describes it: an HTTP client for the routes the
// worker and the exporter use, and an event stream over /ws?clientId=ID that keeps, per prompt,
// what the events said so far.
//
// Neither type is thread-safe except where noted: the renderer owns one of each.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "scenefarm/http_client.h"
#include "scenefarm/status.h"
#include "scenefarm/ws_client.h"

namespace scenefarm::comfyui {

struct Image {
  std::string filename, subfolder, type;  // type: output | temp | input
};

// One /history entry, read.
struct HistoryEntry {
  bool success = false;                   // status_str == "success"
  std::vector<Image> images;              // every output node's images, in node order
  std::string error_type, error_message;  // execution_error's exception_type / _message
  bool interrupted = false;
  int64_t started_ms = 0, finished_ms = 0;  // execution_start / the final message's timestamp
  nlohmann::json raw;
};
// Reads one /history entry. A field of the wrong type (an entry that is not an object, a
// status_str that is a number, an image whose filename is not a string...) is kInternal naming
// it: nothing from ComfyUI is trusted to have the documented shape, and nothing here throws.
// Messages that are not [name, {...}] pairs are skipped, as are images that are not objects.
Result<HistoryEntry> ParseHistoryEntry(const nlohmann::json& entry);

// One /ws event that can change what a prompt is waiting on (comfyui-api.md's prompt events).
struct Event {
  std::string type;  // execution_start, executing, execution_success, execution_error, ...
  std::string prompt_id;
  bool node_null = false;                         // executing with node null: the prompt ended
  int64_t timestamp = 0;                          // execution_success's
  std::string exception_type, exception_message;  // execution_error's
};
// Reads one text frame of /ws. nullopt for events that change nothing we wait on (status,
// unknown types, events without a prompt_id); kInternal for text that is not a JSON object with
// a string "type", or a known event whose fields have the wrong type. Never throws.
Result<std::optional<Event>> ParseEvent(std::string_view text);

class Client {
 public:
  explicit Client(const std::string& base_url,
                  http::ClientOptions options = {std::chrono::milliseconds(2000),
                                                 std::chrono::milliseconds(30000)});

  // POST /prompt. A 400 is kInvalidArgument carrying ComfyUI's error and node_errors (a
  // permanent failure); 5xx and transport failures are kUnavailable.
  Status Submit(const nlohmann::json& workflow, const std::string& prompt_id,
                const std::string& client_id, const nlohmann::json& extra_data = {});
  // GET /history/{id}: nullopt while ComfyUI has no entry for it.
  Result<std::optional<HistoryEntry>> History(const std::string& prompt_id);
  // GET /queue: where the prompt is: "running", "pending" or "" (unknown to the queue).
  Result<std::string> QueuePosition(const std::string& prompt_id);
  // POST /queue {"delete"} then POST /interrupt {"prompt_id"}: the prompt stops wherever it is.
  Status Withdraw(const std::string& prompt_id);
  // POST /free: the answer to GPU out-of-memory.
  Status Free(bool unload_models, bool free_memory);
  Result<nlohmann::json> SystemStats();
  // GET /prompt (the queue's size, ComfyUI's cheapest route): OK when ComfyUI answers 200.
  Status Ping();
  // GET /object_info/{class}: whether ComfyUI has that node.
  Result<bool> HasNode(const std::string& class_type);
  // GET /view: the bytes of an output file (for workers that cannot see the output directory).
  Result<std::string> View(const Image& image);

  const std::string& base_url() const { return http_.base_url(); }

 private:
  Result<http::Response> Call(std::string_view method, std::string_view path,
                              std::string_view body = {});
  http::Client http_;
};

// What the events about one prompt said so far.
struct PromptEvents {
  bool started = false;
  bool success = false;   // execution_success
  bool finished = false;  // executing with node null (sent after the history entry)
  bool error = false;     // execution_error
  bool interrupted = false;
  std::string error_type, error_message;
  int64_t success_ms = 0;                            // execution_success's timestamp
  std::chrono::steady_clock::time_point ended_at{};  // when success/error/interrupt arrived here
  bool ended() const { return success || finished || error || interrupted; }
};

// /ws?clientId=ID, reconnected on demand with backoff. Events arrive on civetweb's thread;
// the methods are safe to call from one other thread.
class EventStream {
 public:
  EventStream(const std::string& base_url, std::string client_id);
  ~EventStream();
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

  // Connects when not connected and the backoff allows; true when connected afterwards.
  bool EnsureConnected();
  bool connected() const;
  // Connections made so far; a change means events may have been missed meanwhile.
  int64_t connections() const;
  std::optional<PromptEvents> Get(const std::string& prompt_id) const;
  // Blocks until an event arrives, the socket drops, or timeout (a plain sleep when closed).
  void WaitForChange(std::chrono::milliseconds timeout);
  void Forget(const std::string& prompt_id);
  // Closes the socket and stops reconnecting (the polling-only mode).
  void Disable();

 private:
  void OnText(std::string_view text);
  void OnClose();
  void Apply(const Event& ev);

  std::string host_, path_;
  int port_ = 0;
  bool disabled_ = false;
  std::unique_ptr<ws::Client> ws_;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_{100};

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool connected_ = false;
  int64_t connections_ = 0;
  int64_t malformed_ = 0;  // events that could not be read, logged sparingly
  uint64_t version_ = 0;
  std::map<std::string, PromptEvents> prompts_;
};

}  // namespace scenefarm::comfyui
