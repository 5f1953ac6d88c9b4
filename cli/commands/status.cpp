// scenefarm status [--json]: depth by state, outcomes, workers, oldest pending age, runs.
#include <iostream>

#include "commands.h"
#include "scenefarm/queue.h"

namespace scenefarm::cli {
namespace {

void PrintHuman(const queue::QueueStatus& s) {
  std::cout << "queue " << s.queue << "\n"
            << "  pending " << s.depth.pending << "  delayed " << s.depth.delayed << "  leased "
            << s.depth.leased << "  dead " << s.depth.dead << "\n"
            << "  oldest pending " << s.oldest_pending_age_seconds << " s\n"
            << "  workers live " << s.workers_live << "  busy " << s.workers_busy << "\n  outcomes";
  const nlohmann::json outcomes = s.ToJson()["outcomes"];
  for (const auto& [k, v] : outcomes.items())
    std::cout << "  " << k << " " << v;
  std::cout << "\n  runs in progress " << s.runs_in_progress.size();
  for (const auto& r : s.runs_in_progress)
    std::cout << " " << r;
  std::cout << "\n";
}

}  // namespace

void RegisterStatus(CLI::App& app, Global& g, int* exit_code) {
  auto* cmd = app.add_subcommand("status", "queue depth by state, outcomes, workers");
  auto live = std::make_shared<double>(30);
  cmd->add_flag("--json", g.json, "print JSON (the shape scripts rely on, see README)");
  cmd->add_option("--live-window-seconds", *live, "a worker heard from within this is live")
      ->capture_default_str();
  cmd->callback([&g, live, exit_code] {
    QueueHandle h(g);
    auto s = h.queue.GetStatus(std::chrono::milliseconds(static_cast<int64_t>(*live * 1000)));
    if (!s.ok()) {
      *exit_code = Fail("status: " + s.status().message());
      return;
    }
    if (g.json) {
      std::cout << s->ToJson().dump() << "\n";
    } else {
      PrintHuman(*s);
    }
    *exit_code = kExitOk;
  });
}

}  // namespace scenefarm::cli
