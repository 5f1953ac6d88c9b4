// scenefarm-exporter: reads what workers recorded in Redis and probes ComfyUI, the GPUs and the
// LLM at scrape time; stateless, so any number of exporters agree and a restart loses nothing.
#include <csignal>
#include <iostream>

#include "collector_set.h"
#include "malloc_settings.h"
#include "options.h"
#include "scenefarm/log.h"
#include "server.h"

int main(int argc, char** argv) {
  using namespace scenefarm;
  // Before any thread starts (malloc_settings.h says why).
  const std::string malloc_settings = exporter::ConfigureMalloc();
  auto o = exporter::ParseExporterOptions(argc, argv);
  if (!o.ok()) {
    const bool help = o.status().code() == StatusCode::kAborted;
    (help ? std::cout : std::cerr) << o.status().message() << "\n";
    return help ? 0 : 2;
  }
  log::Init("exporter", o->log_level);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // civetweb's threads inherit the mask

  redis::Options ro;
  ro.url = o->redis_url;
  ro.connect_timeout = o->timeout();
  ro.command_timeout = o->timeout();
  auto redis = std::make_shared<exporter::SharedRedis>(ro);
  auto collectors = exporter::MakeCollectors(*o, redis);
  auto server = exporter::Server::Start(*o, collectors, redis);
  if (!server.ok()) {
    log::Error("exporter_failed", {{"error", server.status().ToString()}});
    return 1;
  }
  log::Info("exporter_listening", {{"listen", o->listen},
                                   {"port", (*server)->port()},
                                   {"tls", (*server)->tls()},
                                   {"redis", log::RedactUrl(o->redis_url)},
                                   {"collectors", collectors->size()},
                                   {"malloc", malloc_settings}});
  int sig = 0;
  sigwait(&set, &sig);
  log::Info("exporter_stopping", {{"signal", sig}});
  server->reset();
  return 0;
}
