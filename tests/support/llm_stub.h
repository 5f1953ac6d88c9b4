// A small OpenAI-compatible endpoint for the exporter's LLM probes, like LM Studio and Ollama:
// GET /v1/models answers {"object": "list", "data": [...]}; POST /v1/chat/completions answers a
// one-choice completion after a configurable delay; either can answer a configured failure.
#pragma once

#include <civetweb.h>

#include <atomic>
#include <mutex>
#include <string>

namespace scenefarm::testing {

class LlmStub {
 public:
  LlmStub();
  ~LlmStub();
  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void set_status(int status) { status_ = status; }  // GET /v1/models; 200: the model list
  int requests() const { return requests_; }         // GET /v1/models requests
  // POST /v1/chat/completions: 200 answers a completion, anything else an error body.
  void set_chat_status(int status) { chat_status_ = status; }
  // How long a completion takes before it is answered (a slow model).
  void set_chat_delay_ms(int ms) { chat_delay_ms_ = ms; }
  int chat_requests() const { return chat_requests_; }  // completions answered so far
  std::string last_chat_body() const;

 private:
  static int HandleModels(mg_connection* conn, void* self);
  static int HandleChat(mg_connection* conn, void* self);
  mg_context* ctx_ = nullptr;
  int port_ = 0;
  std::atomic<int> status_{200};
  std::atomic<int> requests_{0};
  std::atomic<int> chat_status_{200};
  std::atomic<int> chat_delay_ms_{0};
  std::atomic<int> chat_requests_{0};
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::string last_chat_body_;  // guarded by mu_
};

}  // namespace scenefarm::testing
