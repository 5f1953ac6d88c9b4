// scenefarm-test-worker: scenefarm-worker's loop with the FakeRenderer, for the crash test and
// the queue benchmark. Test and benchmark use only.
#include <csignal>
#include <iostream>

#include "fake_renderer.h"
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
    std::cerr << options.status().message() << "\n";
    return 2;
  }
  scenefarm::log::Init("test-worker", options->log_level);
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  scenefarm::SystemClock clock;
  scenefarm::testing::FakeRenderer renderer;
  scenefarm::worker::Worker worker(*options, renderer, clock);
  return worker.Run(g_stop);
}
