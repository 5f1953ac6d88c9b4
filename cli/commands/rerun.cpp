// scenefarm rerun ID... [--reason TEXT]: render succeeded scenes again, on purpose. Each goes
// back to pending with a new attempt (rerun.lua); its history records the rerun, who asked and
// why. Exit 1 when a scene is unknown, expired or not succeeded (the others are still rerun).
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "commands.h"

namespace scenefarm::cli {
namespace {

// "rerun requested by USER@HOST", plus the operator's reason when given.
std::string RerunReason(const std::string& given) {
  const char* user = std::getenv("USER");
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::string who = std::string(user && *user ? user : "unknown") + "@" + host;
  return "rerun requested by " + who + (given.empty() ? "" : ": " + given);
}

}  // namespace

void RegisterRerun(CLI::App& app, Global& g, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "rerun", "render succeeded scenes again (recorded in their history; new attempt)");
  auto ids = std::make_shared<std::vector<std::string>>();
  auto reason = std::make_shared<std::string>();
  cmd->add_option("ids", *ids, "scene ids")->required();
  cmd->add_option("--reason", *reason, "why, kept in each scene's history");
  cmd->add_flag("--json", g.json, "print JSON");
  cmd->callback([&g, ids, reason, exit_code] {
    QueueHandle h(g);
    const std::string why = RerunReason(*reason);
    int rc = kExitOk;
    nlohmann::json done = nlohmann::json::array(), refused = nlohmann::json::object();
    for (const auto& id : *ids) {
      Status s = h.queue.Rerun(id, why);
      if (!s.ok()) {
        rc = Fail("rerun " + id + ": " + s.message());
        refused[id] = s.message();
        if (s.code() == StatusCode::kUnavailable) break;
        continue;
      }
      done.push_back(id);
      if (!g.json) std::cout << id << ": back to pending, to be rendered again\n";
    }
    if (g.json) std::cout << nlohmann::json{{"rerun", done}, {"refused", refused}}.dump() << "\n";
    *exit_code = rc;
  });
}

}  // namespace scenefarm::cli
