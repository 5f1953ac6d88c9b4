// scenefarm-worker: flags and SCENEFARM_* variables -> WorkerOptions -> Worker::Run.
#include <csignal>
#include <iostream>

#include "comfyui_renderer.h"
#include "scenefarm/log.h"
#include "worker.h"

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) {
  g_stop = true;
}
}  // namespace

int main(int argc, char** argv) {
  auto options = scenefarm::ParseWorkerOptions(argc, argv);
  if (!options.ok()) {
    const bool help = options.status().code() == scenefarm::StatusCode::kAborted;
    (help ? std::cout : std::cerr) << options.status().message() << "\n";
    return help ? 0 : 2;
  }
  scenefarm::log::Init("worker", options->log_level);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  scenefarm::SystemClock clock;
  scenefarm::worker::ComfyUiRenderer renderer(*options);
  scenefarm::worker::Worker worker(*options, renderer, clock);
  return worker.Run(g_stop);
}
