#include "worker_main.h"

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <iostream>

#include "scenefarm/log.h"
#include "worker.h"

namespace scenefarm::worker {
namespace {
std::atomic<bool> g_stop{false};
// Worker::SetStopPipe: the handler's byte wakes the heartbeat thread's poll.
int g_stop_pipe[2] = {-1, -1};
void OnSignal(int) {
  g_stop = true;
  if (g_stop_pipe[1] >= 0) {
    const char byte = 1;
    [[maybe_unused]] const ssize_t n = write(g_stop_pipe[1], &byte, 1);  // async-signal-safe
  }
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
  if (pipe2(g_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    g_stop_pipe[0] = g_stop_pipe[1] = -1;  // the heartbeat thread polls `stop` instead
  }
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  SystemClock clock;
  std::unique_ptr<Renderer> renderer = make_renderer(*options);
  Worker worker(*options, *renderer, clock);
  if (g_stop_pipe[0] >= 0) worker.SetStopPipe(g_stop_pipe[0], g_stop_pipe[1]);
  return worker.Run(g_stop);
}

}  // namespace scenefarm::worker
