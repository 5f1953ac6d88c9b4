// The JSON API under /api/ on the exporter's listener (docs/api.md): the farm's queues, scenes,
// runs, workers and ComfyUI instances for scripts and the /ui/ pages, and the operator's actions
// (enqueue, cancel, retry, pause, resume, purge) behind --web.enable-actions, an authenticated
// user and a CSRF check. Reads and writes go through a Redis connection of its own, so an API
// call never waits for a scrape's collectors nor they for it; each request's work is bounded.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "collector.h"
#include "options.h"
#include "web.h"

struct mg_connection;

namespace scenefarm::exporter {

// What the ComfyUI collector saw at its last probe (GET /api/comfyui answers from it: a request
// never probes ComfyUI itself). One per process, like the Server.
struct ComfyUiSeen {
  std::mutex mu;
  nlohmann::json instances = nlohmann::json::array();  // [{url, up, queue_running, queue_pending}]
  int64_t at_ms = 0;                                   // when (this host's clock); 0: never
};
ComfyUiSeen& LastComfyUiSeen();

// The user of an "Authorization: Basic ..." header ("" when none or malformed). The server has
// checked the password before the API sees the request.
std::string BasicAuthUser(const char* authorization_header);

class Api {
 public:
  Api(const ExporterOptions& options, const WebConfig& web);
  ~Api();
  // Answers a request whose path starts with /api/ (or is /api). `user`: the basic-auth user
  // the server already verified ("" when the web config has no users). Returns the status sent.
  int Handle(mg_connection* conn, const std::string& user);

  // hex(HMAC-SHA256(per-process secret, user)): the token an action must carry in
  // X-Scenefarm-CSRF (GET /api/csrf hands it out).
  std::string CsrfToken(const std::string& user) const;

 private:
  struct Request;
  int Route(Request& req);
  int Queues(Request& req);
  int Scenes(Request& req, const std::string& queue);
  int GetScene(Request& req, const std::string& id);
  int Runs(Request& req);
  int GetRun(Request& req, const std::string& run);
  int Workers(Request& req);
  int ComfyUi(Request& req);
  int Enqueue(Request& req);
  int SceneAction(Request& req, const std::string& id, const std::string& action);
  int QueueAction(Request& req, const std::string& queue, const std::string& action);
  // 0 when the action may go on; otherwise the refusal already sent (403).
  int RefuseAction(Request& req);
  // The queue named by ?queue= (default: the first configured one); 0 when known, otherwise
  // the 400/404 already sent.
  int QueueParam(Request& req, std::string* queue);
  int KnownQueue(Request& req, const std::string& queue);

  const ExporterOptions options_;
  const bool users_configured_;
  const bool tls_;
  std::string secret_;  // 32 random bytes, for the CSRF tokens
  SharedRedis redis_;   // the API's own connection
};

}  // namespace scenefarm::exporter
