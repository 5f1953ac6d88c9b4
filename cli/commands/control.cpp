// scenefarm cancel ID...; retry ID... | --all-dead [--run R]; purge --dead --older-than D;
// pause QUEUE; resume QUEUE. Each records who asked ("cli:$USER") in the queue's events.
#include <unistd.h>

#include <cstdlib>
#include <iostream>

#include "commands.h"

namespace scenefarm::cli {

Result<std::chrono::milliseconds> ParseDuration(const std::string& s) {
  if (s.size() < 2) return Status::InvalidArgument("duration '" + s + "': like 30s, 15m, 12h, 7d");
  const char unit = s.back();
  int64_t n = 0;
  try {
    size_t used = 0;
    n = std::stoll(s.substr(0, s.size() - 1), &used);
    if (used != s.size() - 1 || n < 0) throw std::invalid_argument(s);
  } catch (const std::exception&) {
    return Status::InvalidArgument("duration '" + s + "': like 30s, 15m, 12h, 7d");
  }
  const int64_t mult = unit == 's'   ? 1
                       : unit == 'm' ? 60
                       : unit == 'h' ? 3600
                       : unit == 'd' ? 86400
                                     : 0;
  if (mult == 0) return Status::InvalidArgument("duration '" + s + "': unit s, m, h or d");
  return std::chrono::milliseconds(n * mult * 1000);
}

std::string CliActor() {
  const char* user = std::getenv("USER");
  if (user == nullptr || *user == '\0') user = std::getenv("LOGNAME");
  return std::string("cli:") + (user && *user ? user : std::to_string(getuid()));
}

namespace {

void RegisterPauseResume(CLI::App& app, Global& g, int* exit_code, bool pause) {
  auto* cmd = app.add_subcommand(
      pause ? "pause" : "resume",
      pause ? "pause a queue: nothing is leased from it (workers keep heartbeats and finish "
              "what they hold)"
            : "resume a paused queue");
  auto name = std::make_shared<std::string>();
  cmd->add_option("queue", *name, "queue name")->required();
  cmd->add_flag("--json", g.json, "print JSON");
  cmd->callback([&g, name, exit_code, pause] {
    if (!IsValidId(*name)) {
      *exit_code = kExitUsage;
      std::cerr << "scenefarm: " << (pause ? "pause" : "resume")
                << ": queue must match [A-Za-z0-9._-]{1,128}\n";
      return;
    }
    Global q = g;
    q.queue = *name;
    QueueHandle h(q);
    auto changed = pause ? h.queue.Pause(CliActor()) : h.queue.Resume(CliActor());
    if (!changed.ok()) {
      *exit_code = Fail(std::string(pause ? "pause " : "resume ") + *name + ": " +
                        changed.status().message());
      return;
    }
    if (g.json) {
      std::cout << nlohmann::json{{"queue", *name}, {"paused", pause}, {"changed", *changed}}.dump()
                << "\n";
    } else {
      std::cout << "queue " << *name << (*changed ? "" : " already")
                << (pause ? " paused" : " resumed") << "\n";
    }
    *exit_code = kExitOk;
  });
}

void RegisterCancel(CLI::App& app, Global& g, int* exit_code) {
  auto* cancel = app.add_subcommand(
      "cancel", "cancel scenes: pending/delayed/dead at once, leased ones via their worker");
  auto ids = std::make_shared<std::vector<std::string>>();
  cancel->add_option("ids", *ids, "scene ids")->required();
  cancel->add_flag("--json", g.json, "print JSON");
  cancel->callback([&g, ids, exit_code] {
    QueueHandle h(g);
    nlohmann::json out = nlohmann::json::array();
    int rc = kExitOk;
    for (const auto& id : *ids) {
      auto r = h.queue.Cancel(id, CliActor());
      if (!r.ok()) {
        rc = Fail("cancel " + id + ": " + r.status().message());
        if (r.status().code() == StatusCode::kUnavailable) break;
        continue;
      }
      const std::string what = *r == "leased" ? "cancel requested (its worker stops it)"
                               : *r == "succeeded" || *r == "cancelled"
                                   ? "already " + *r
                                   : "cancelled (was " + *r + ")";
      out.push_back({{"id", id}, {"was", *r}, {"result", what}});
      if (!g.json) std::cout << id << ": " << what << "\n";
    }
    if (g.json) std::cout << out.dump() << "\n";
    *exit_code = rc;
  });
}

void RegisterRetry(CLI::App& app, Global& g, int* exit_code) {
  auto* retry = app.add_subcommand("retry", "dead-lettered scenes back to pending, fresh budget");
  auto rids = std::make_shared<std::vector<std::string>>();
  auto all_dead = std::make_shared<bool>(false);
  auto run = std::make_shared<std::string>();
  retry->add_option("ids", *rids, "scene ids");
  retry->add_flag("--all-dead", *all_dead, "every dead-lettered scene (of --run, if given)");
  retry->add_option("--run", *run, "with --all-dead: only this run");
  retry->add_flag("--json", g.json, "print JSON");
  retry->callback([&g, rids, all_dead, run, exit_code] {
    if (rids->empty() == !*all_dead) {
      *exit_code = kExitUsage;
      std::cerr << "scenefarm: retry: give scene ids or --all-dead\n";
      return;
    }
    QueueHandle h(g);
    std::vector<std::string> todo = *rids;
    if (*all_dead) {
      auto dead = h.queue.List("dead", *run, 1000000);
      if (!dead.ok()) {
        *exit_code = Fail("retry: " + dead.status().message());
        return;
      }
      for (const auto& s : *dead)
        todo.push_back(s.id);
    }
    int rc = kExitOk;
    nlohmann::json out = nlohmann::json::array();
    for (const auto& id : todo) {
      Status s = h.queue.Retry(id, CliActor());
      if (!s.ok()) {
        rc = Fail("retry " + id + ": " + s.message());
        if (s.code() == StatusCode::kUnavailable) break;
        continue;
      }
      out.push_back(id);
      if (!g.json) std::cout << id << ": back to pending\n";
    }
    if (g.json) std::cout << nlohmann::json{{"retried", out}}.dump() << "\n";
    *exit_code = rc;
  });
}

// Deletes (or lists, dry) the scenes dead-lettered longer than `older` ago. The exit code.
int RunPurge(Global& g, const std::string& older, bool yes, bool dry) {
  auto d = ParseDuration(older);
  if (!d.ok()) {
    std::cerr << "scenefarm: purge: " << d.status().message() << "\n";
    return kExitUsage;
  }
  QueueHandle h(g);
  auto now = h.queue.TimeMs();  // dead-letter times are the Redis server's
  if (!now.ok()) {
    return Fail("purge: " + now.status().message());
  }
  const int64_t cutoff = *now - d->count();
  auto ids = h.queue.DeadBefore(cutoff, 1000000);
  if (!ids.ok()) {
    return Fail("purge: " + ids.status().message());
  }
  if (!dry && !ids->empty() && !yes && isatty(0) && isatty(1)) {
    std::cout << "delete " << ids->size() << " dead-lettered scene(s) of queue " << g.queue
              << " for good? [y/N] " << std::flush;
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "yes") {
      std::cout << "nothing deleted\n";
      return kExitOk;
    }
  }
  std::vector<std::string> done = *ids;
  if (!dry) {
    // What was listed (and confirmed), a few hundred per script call.
    auto r = h.queue.PurgeDead(cutoff, ids->size(), CliActor());
    if (!r.ok()) {
      return Fail("purge: " + r.status().message());
    }
    done = *r;
  }
  if (g.json) {
    std::cout << nlohmann::json{{"dry_run", dry}, {"purged", done}}.dump() << "\n";
  } else {
    for (const auto& id : done)
      std::cout << (dry ? "would delete " : "deleted ") << id << "\n";
    std::cout << (dry ? "would delete " : "deleted ") << done.size() << " scene(s)\n";
  }
  return kExitOk;
}

void RegisterPurge(CLI::App& app, Global& g, int* exit_code) {
  auto* purge = app.add_subcommand("purge", "delete dead-lettered scenes for good");
  auto dead_flag = std::make_shared<bool>(false);
  auto older = std::make_shared<std::string>();
  auto yes = std::make_shared<bool>(false);
  auto dry = std::make_shared<bool>(false);
  purge->add_flag("--dead", *dead_flag, "dead-lettered scenes (required: nothing else is purged)")
      ->required();
  purge->add_option("--older-than", *older, "dead-lettered longer ago than this: 30m, 12h, 7d")
      ->required();
  purge->add_flag("--yes,-y", *yes, "do not ask on a terminal");
  purge->add_flag("--dry-run", *dry, "list what would be deleted");
  purge->add_flag("--json", g.json, "print JSON");
  // Every option's storage is captured: CLI11 writes through references to it while parsing.
  // --dead is required: only dead-lettered scenes are ever purged.
  purge->callback([&g, dead_flag, older, yes, dry, exit_code] {
    *exit_code = *dead_flag ? RunPurge(g, *older, *yes, *dry) : kExitUsage;
  });
}

}  // namespace

void RegisterControl(CLI::App& app, Global& g, int* exit_code) {
  RegisterPauseResume(app, g, exit_code, true);
  RegisterPauseResume(app, g, exit_code, false);
  RegisterCancel(app, g, exit_code);
  RegisterRetry(app, g, exit_code);
  RegisterPurge(app, g, exit_code);
}

}  // namespace scenefarm::cli
