#include "support/llm_stub.h"

#include <chrono>
#include <stdexcept>
#include <thread>

namespace scenefarm::testing {
namespace {

int Answer(mg_connection* conn, int status, const std::string& body) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            status, status == 200 ? "OK" : "Error", body.size());
  mg_write(conn, body.data(), body.size());
  return status;
}

}  // namespace

LlmStub::LlmStub() {
  const char* opts[] = {"listening_ports", "127.0.0.1:0", "num_threads", "4", nullptr};
  mg_callbacks cb{};
  ctx_ = mg_start(&cb, this, opts);
  if (ctx_ == nullptr) throw std::runtime_error("LlmStub: cannot listen");
  mg_server_port p[1];
  mg_get_server_ports(ctx_, 1, p);
  port_ = p[0].port;
  mg_set_request_handler(ctx_, "/v1/models", &LlmStub::HandleModels, this);
  mg_set_request_handler(ctx_, "/v1/chat/completions", &LlmStub::HandleChat, this);
}

LlmStub::~LlmStub() {
  stopping_ = true;  // a delayed completion answers at once
  if (ctx_) mg_stop(ctx_);
}

std::string LlmStub::last_chat_body() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_chat_body_;
}

int LlmStub::HandleModels(mg_connection* conn, void* user) {
  auto* self = static_cast<LlmStub*>(user);
  self->requests_++;
  const int status = self->status_;
  return Answer(conn, status,
                status == 200 ? R"({"object":"list","data":[{"id":"qwen2.5-7b-instruct",)"
                                R"("object":"model"},{"id":"llama-3.1-8b","object":"model"}]})"
                              : R"({"error":"model not loaded"})");
}

int LlmStub::HandleChat(mg_connection* conn, void* user) {
  auto* self = static_cast<LlmStub*>(user);
  std::string body;
  char buf[4096];
  int n;
  while ((n = mg_read(conn, buf, sizeof(buf))) > 0)
    body.append(buf, n);
  {
    std::lock_guard<std::mutex> lock(self->mu_);
    self->last_chat_body_ = body;
  }
  // The stand-in's slowness is what the probe measures; it ends early only when stopping.
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(self->chat_delay_ms_.load());
  while (!self->stopping_ && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const int status = self->chat_status_;
  self->chat_requests_++;
  return Answer(conn, status,
                status == 200 ? R"({"id":"chatcmpl-1","object":"chat.completion","choices":)"
                                R"([{"index":0,"message":{"role":"assistant","content":"OK"},)"
                                R"("finish_reason":"length"}]})"
                              : R"({"error":{"message":"model not loaded"}})");
}

}  // namespace scenefarm::testing
