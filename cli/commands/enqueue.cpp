// scenefarm enqueue [--run R] [--retry-budget N] FILE|-
// Reads a JSON object, a JSON array or JSON lines; validates every scene before sending any;
// enqueues in pipelined batches; prints one id per line (stdout) and a summary (stderr).
#include <unistd.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "scenefarm/queue.h"

namespace scenefarm::cli {
namespace {

struct EnqueueArgs {
  std::string file;
  std::string run;
  int retry_budget = 1;
};

Result<std::string> ReadInput(const std::string& file) {
  std::stringstream ss;
  if (file == "-") {
    ss << std::cin.rdbuf();
  } else {
    std::ifstream in(file, std::ios::binary);
    if (!in) return Status::NotFound("cannot read " + file);
    ss << in.rdbuf();
  }
  return ss.str();
}

int RunEnqueue(const Global& g, const EnqueueArgs& a) {
  auto text = ReadInput(a.file);
  if (!text.ok()) return Fail(text.status().message());
  std::optional<std::string> run;
  if (!a.run.empty()) {
    if (!IsValidId(a.run)) return Fail("--run must match [A-Za-z0-9._-]{1,128}");
    run = a.run;
  }
  auto scenes = ParseSceneStream(*text, run);
  if (!scenes.ok()) return Fail(a.file + ": " + scenes.status().message() + " (nothing enqueued)");
  QueueHandle h(g, a.retry_budget);
  const bool tty = isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  size_t created = 0, existing = 0;
  constexpr size_t kChunk = 10000;
  for (size_t at = 0; at < scenes->size(); at += kChunk) {
    std::vector<Scene> chunk(scenes->begin() + at,
                             scenes->begin() + std::min(scenes->size(), at + kChunk));
    auto r = h.queue.Enqueue(chunk);
    if (!r.ok()) {
      return Fail("enqueue: " + r.status().message() + " (" + std::to_string(created) +
                  " scenes were enqueued before the error)");
    }
    for (size_t i = 0; i < chunk.size(); ++i) {
      if ((*r)[i]) {
        ++created;
        std::cout << chunk[i].id << "\n";
      } else {
        ++existing;
        std::cerr << "scenefarm: scene " << chunk[i].id << " already exists; not enqueued\n";
      }
    }
    if (tty)
      std::cerr << "\r  enqueued " << created + existing << "/" << scenes->size() << std::flush;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (tty) std::cerr << "\n";
  std::cerr << "enqueued " << created << " scenes to queue " << g.queue << " in " << secs << " s ("
            << static_cast<int64_t>(secs > 0 ? created / secs : 0) << " scenes/s)\n";
  return existing > 0 ? kExitFailure : kExitOk;
}

}  // namespace

void RegisterEnqueue(CLI::App& app, Global& g, int* exit_code) {
  auto args = std::make_shared<EnqueueArgs>();
  auto* cmd = app.add_subcommand("enqueue",
                                 "enqueue scenes from FILE (- for stdin): a JSON "
                                 "object, an array, or JSON lines; prints their ids");
  cmd->add_option("file", args->file, "scene file, or - for standard input")->required();
  cmd->add_option("--run", args->run, "run for scenes that name none");
  cmd->add_option("--retry-budget", args->retry_budget, "SceneRetryBudget for scenes that set none")
      ->envname("SCENEFARM_SCENE_RETRY_BUDGET")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  cmd->callback([&g, args, exit_code] { *exit_code = RunEnqueue(g, *args); });
}

}  // namespace scenefarm::cli
