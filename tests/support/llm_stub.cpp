#include "support/llm_stub.h"

#include <stdexcept>

namespace scenefarm::testing {

LlmStub::LlmStub() {
  const char* opts[] = {"listening_ports", "127.0.0.1:0", "num_threads", "2", nullptr};
  mg_callbacks cb{};
  ctx_ = mg_start(&cb, this, opts);
  if (ctx_ == nullptr) throw std::runtime_error("LlmStub: cannot listen");
  mg_server_port p[1];
  mg_get_server_ports(ctx_, 1, p);
  port_ = p[0].port;
  mg_set_request_handler(ctx_, "/v1/models", &LlmStub::Handle, this);
}

LlmStub::~LlmStub() {
  if (ctx_) mg_stop(ctx_);
}

int LlmStub::Handle(mg_connection* conn, void* user) {
  auto* self = static_cast<LlmStub*>(user);
  self->requests_++;
  const int status = self->status_;
  const std::string body =
      status == 200 ? R"({"object":"list","data":[{"id":"qwen2.5-7b-instruct","object":"model"},)"
                      R"({"id":"llama-3.1-8b","object":"model"}]})"
                    : R"({"error":"model not loaded"})";
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
            "Connection: close\r\n\r\n",
            status, status == 200 ? "OK" : "Error", body.size());
  mg_write(conn, body.data(), body.size());
  return status;
}

}  // namespace scenefarm::testing
