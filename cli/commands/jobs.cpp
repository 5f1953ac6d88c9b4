// scenefarm jobs show ID [--json]: a scene's state, attempts, reason and transitions.
#include <iostream>

#include "commands.h"
#include "scenefarm/queue.h"

namespace scenefarm::cli {

void RegisterJobs(CLI::App& app, Global& g, int* exit_code) {
  auto* jobs = app.add_subcommand("jobs", "inspect scenes");
  jobs->require_subcommand(1);
  auto* show = jobs->add_subcommand("show", "one scene: state, attempts, reason, history");
  auto id = std::make_shared<std::string>();
  show->add_option("id", *id, "scene id")->required();
  show->add_flag("--json", g.json, "print JSON");
  show->callback([&g, id, exit_code] {
    QueueHandle h(g);
    auto info = h.queue.Show(*id);
    if (!info.ok()) {
      *exit_code = Fail("jobs show: " + info.status().message());
      return;
    }
    if (g.json) {
      std::cout << info->ToJson().dump() << "\n";
    } else {
      std::cout << info->id << "  run " << info->run << "  " << info->state << "  attempts "
                << info->attempts << "  failures " << info->failures << "\n";
      if (!info->reason.empty()) std::cout << "  reason: " << info->reason << "\n";
      for (const auto& e : info->history) {
        std::cout << "  " << e.value("event", "") << " attempt " << e.value("attempt", "")
                  << (e.value("worker", "").empty() ? "" : " by " + e.value("worker", ""))
                  << (e.value("reason", "").empty() ? "" : ": " + e.value("reason", "")) << "\n";
      }
    }
    *exit_code = kExitOk;
  });
}

}  // namespace scenefarm::cli
