#include "scenefarm/ws_client.h"

#include <arpa/inet.h>
#include <civetweb.h>

namespace scenefarm::ws {
namespace {

void InitCivetwebOnce() {
  static std::once_flag once;
  std::call_once(once, [] { mg_init_library(MG_FEATURES_WEBSOCKET); });
}

}  // namespace

Client::Client(TextHandler on_text, CloseHandler on_close)
    : on_text_(std::move(on_text)), on_close_(std::move(on_close)) {}

Result<std::unique_ptr<Client>> Client::Connect(const std::string& host, int port,
                                                const std::string& path, TextHandler on_text,
                                                CloseHandler on_close) {
  InitCivetwebOnce();
  std::unique_ptr<Client> client(new Client(std::move(on_text), std::move(on_close)));
  char err[256] = {0};
  mg_connection* conn = mg_connect_websocket_client(
      host.c_str(), port, 0, err, sizeof(err), path.c_str(),
      /*origin=*/nullptr, &Client::OnData, &Client::OnClose, client.get());
  if (conn == nullptr) {
    return Status::Unavailable("websocket ws://" + host + ":" + std::to_string(port) + path + ": " +
                               (err[0] ? err : "connect failed"));
  }
  client->conn_.reset(conn);
  return client;
}

Client::~Client() {
  Close();
}

void Client::Close() {
  closing_ = true;
  std::lock_guard<std::mutex> lock(write_mu_);
  if (conn_ && !closed_) {
    // A close frame makes the peer close the socket, which wakes civetweb's reader thread at
    // once; without it mg_close_connection waits out the reader's poll timeout.
    const uint16_t code = htons(1000);
    (void)mg_websocket_client_write(conn_.get(), MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE,
                                    reinterpret_cast<const char*>(&code), sizeof(code));
  }
  // mg_close_connection joins civetweb's reader thread, so no callback runs after this.
  conn_.reset();
  closed_ = true;
}

Status Client::SendText(std::string_view text) {
  std::lock_guard<std::mutex> lock(write_mu_);
  if (!conn_ || closed_) return Status::Unavailable("websocket closed");
  const int n =
      mg_websocket_client_write(conn_.get(), MG_WEBSOCKET_OPCODE_TEXT, text.data(), text.size());
  if (n <= 0) return Status::Unavailable("websocket write failed");
  return Status::Ok();
}

int Client::OnData(mg_connection*, int bits, char* data, size_t len, void* user) {
  auto* self = static_cast<Client*>(user);
  if (self->closing_) return 0;
  const int opcode = bits & 0x0f;
  const bool fin = (bits & 0x80) != 0;
  switch (opcode) {
    case MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE:
      return 0;
    case MG_WEBSOCKET_OPCODE_PING:
    case MG_WEBSOCKET_OPCODE_PONG:
      return 1;
    case MG_WEBSOCKET_OPCODE_BINARY:
      self->fragment_.clear();
      self->fragment_is_text_ = false;
      return 1;
    case MG_WEBSOCKET_OPCODE_TEXT:
      self->fragment_.assign(data, len);
      self->fragment_is_text_ = true;
      break;
    case MG_WEBSOCKET_OPCODE_CONTINUATION:
      if (!self->fragment_is_text_) return 1;
      self->fragment_.append(data, len);
      break;
    default:
      return 1;
  }
  if (fin) {
    self->fragment_is_text_ = false;
    std::string message;
    message.swap(self->fragment_);
    if (self->on_text_) self->on_text_(message);
  }
  return 1;
}

void Client::OnClose(const mg_connection*, void* user) {
  auto* self = static_cast<Client*>(user);
  self->closed_ = true;
  if (!self->closing_ && self->on_close_) self->on_close_();
}

}  // namespace scenefarm::ws
