#include "worker_main.h"

#include <csignal>
#include <iostream>

#include "scenefarm/log.h"
#include "worker.h"

namespace scenefarm::worker {
namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) {
  g_stop = true;
}
}  // namespace

int WorkerMain(
    int argc, char** argv, const char* component,
    const std::function<std::unique_ptr<Renderer>(const WorkerOptions&)>& make_renderer) {
  auto options = ParseWorkerOptions(argc, argv);
  if (!options.ok()) {
    const bool help = options.status().code() == StatusCode::kAborted;
    (help ? std::cout : std::cerr) << options.status().message() << "\n";
    return help ? 0 : 2;
  }
  log::Init(component, options->log_level);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  SystemClock clock;
  std::unique_ptr<Renderer> renderer = make_renderer(*options);
  Worker worker(*options, *renderer, clock);
  return worker.Run(g_stop);
}

}  // namespace scenefarm::worker
