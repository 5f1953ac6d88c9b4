// A small OpenAI-compatible endpoint for the exporter's LLM probe: GET /v1/models answers
// {"object": "list", "data": [...]} like LM Studio and Ollama, or a configured failure.
#pragma once

#include <civetweb.h>

#include <atomic>
#include <string>

namespace scenefarm::testing {

class LlmStub {
 public:
  LlmStub();
  ~LlmStub();
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void set_status(int status) { status_ = status; }  // 200: the model list
  int requests() const { return requests_; }

 private:
  static int Handle(mg_connection* conn, void* self);
  mg_context* ctx_ = nullptr;
  int port_ = 0;
  std::atomic<int> status_{200};
  std::atomic<int> requests_{0};
};

}  // namespace scenefarm::testing
