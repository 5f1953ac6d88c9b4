// The exporter's HTTP endpoint: civetweb (owned by prometheus-cpp's pull Exposer, which serves
// no path itself) answering every request in BeginRequest: /metrics (metrics_endpoint.h),
// / (a page listing the endpoints), /api/ (api.h), /healthz (alive: no collector stuck past
// options.stuck_seconds) and /readyz (Redis answers),
// with TLS and basic auth from the web config. One Server per process.
#pragma once

#include <chrono>
#include <memory>

#include "api.h"
#include "collector_set.h"
#include "metrics_endpoint.h"
#include "options.h"
#include "scenefarm/handles.h"
#include "web.h"

struct mg_connection;
namespace prometheus {
class Exposer;
}

namespace scenefarm::exporter {

class Server {
 public:
  static Result<std::unique_ptr<Server>> Start(const ExporterOptions& options,
                                               std::shared_ptr<CollectorSet> collectors,
                                               std::shared_ptr<SharedRedis> redis);
  ~Server();
  int port() const { return port_; }
  bool tls() const { return web_.tls(); }

 private:
  Server() = default;
  static int BeginRequest(::mg_connection* conn);

  DlHandle ssl_shim_;  // the TLS shim (LoadSslShim); declared first: closed after civetweb
  WebConfig web_;
  std::unique_ptr<BasicAuth> auth_;
  std::unique_ptr<Api> api_;                  // /api/ (api.h)
  std::unique_ptr<MetricsEndpoint> metrics_;  // /metrics (metrics_endpoint.h)
  std::shared_ptr<CollectorSet> collectors_;
  std::shared_ptr<SharedRedis> redis_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string pem_path_;
  std::chrono::milliseconds stuck_{60000};  // options.stuck(): /healthz's limit
  int port_ = 0;
};

}  // namespace scenefarm::exporter
