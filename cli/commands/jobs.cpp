// scenefarm jobs show ID [--json]: a scene's state, attempts, reason and transitions;
// scenefarm jobs list --state S [--run R] [--limit N] [--json].
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

  auto* list = jobs->add_subcommand("list", "scenes in a state, oldest first (done: newest first)");
  struct ListOpts {
    std::string state = "pending", run;
    size_t limit = 100;
  };
  auto lo = std::make_shared<ListOpts>();
  list->add_option("--state", lo->state, "pending, delayed, leased, dead or done")
      ->check(CLI::IsMember({"pending", "delayed", "leased", "dead", "done"}))
      ->capture_default_str();
  list->add_option("--run", lo->run, "only this run");
  list->add_option("--limit", lo->limit)->capture_default_str();
  list->add_flag("--json", g.json, "print JSON");
  list->callback([&g, lo, exit_code] {
    QueueHandle h(g);
    auto r = h.queue.List(lo->state, lo->run, lo->limit);
    if (!r.ok()) {
      *exit_code = Fail("jobs list: " + r.status().message());
      return;
    }
    if (g.json) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& s : *r) {
        nlohmann::json j = {{"id", s.id},
                            {"run", s.run},
                            {"state", s.state},
                            {"attempts", s.attempts},
                            {"failures", s.failures}};
        if (!s.reason.empty()) j["reason"] = s.reason;
        if (!s.worker.empty()) j["worker"] = s.worker;
        out.push_back(j);
      }
      std::cout << out.dump() << "\n";
    } else {
      for (const auto& s : *r) {
        std::cout << s.id << "  run " << s.run << "  " << s.state << "  attempts " << s.attempts
                  << (s.worker.empty() || s.state != "leased" ? "" : "  worker " + s.worker)
                  << (s.reason.empty() ? "" : "  reason: " + s.reason.substr(0, 120)) << "\n";
      }
      std::cout << r->size() << " scene(s)\n";
    }
    *exit_code = kExitOk;
  });
}

}  // namespace scenefarm::cli
