// A WebSocket client on civetweb's mg_connect_websocket_client (Debian's libcurl has no
// WebSocket support). Used for ComfyUI's /ws event stream.
//
// Text frames are handed to on_text on civetweb's reader thread, one call at a time; binary
// frames (ComfyUI's previews) are dropped. on_close runs once, on that thread, when the peer
// closes or the connection breaks; it does not run for a Close() or destruction. Callbacks
// must not destroy the client. A client is closed on destruction.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "scenefarm/handles.h"
#include "scenefarm/status.h"

namespace scenefarm::ws {

class Client {
 public:
  using TextHandler = std::function<void(std::string_view)>;
  using CloseHandler = std::function<void()>;

  // Connects to ws://host:port/path (path with query, e.g. "/ws?clientId=w1"). Sends no Origin.
  // kUnavailable when the connection or the upgrade fails.
  static Result<std::unique_ptr<Client>> Connect(const std::string& host, int port,
                                                 const std::string& path, TextHandler on_text,
                                                 CloseHandler on_close);
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client();

  Status SendText(std::string_view text);
  // True once the peer closed or the connection broke.
  bool closed() const { return closed_.load(); }
  // Closes the connection; no callback runs after Close() returns.
  void Close();

 private:
  Client(TextHandler on_text, CloseHandler on_close);
  static int OnData(mg_connection* conn, int bits, char* data, size_t len, void* self);
  static void OnClose(const mg_connection* conn, void* self);

  TextHandler on_text_;
  CloseHandler on_close_;
  std::atomic<bool> closed_{false};
  std::atomic<bool> closing_{false};
  std::mutex write_mu_;
  // Continuation frames of one message; reader thread only.
  std::string fragment_;
  bool fragment_is_text_ = false;
  MgClientConnection conn_;
};

}  // namespace scenefarm::ws
