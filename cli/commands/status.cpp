// scenefarm status [--json]: depth by state, outcomes, workers (busy/idle, last heartbeat,
// the paused queues they wait on, leasing paused while their ComfyUI is down),
// oldest pending age, runs in progress, paused.
#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "scenefarm/queue.h"

namespace scenefarm::cli {
namespace {

void PrintHuman(const queue::QueueStatus& s, const nlohmann::json& workers) {
  std::cout << "queue " << s.queue << "\n"
            << "  pending " << s.depth.pending << "  delayed " << s.depth.delayed << "  leased "
            << s.depth.leased << "  dead " << s.depth.dead << "\n"
            << (s.paused ? "  PAUSED by " + (s.paused_by.empty() ? "?" : s.paused_by) +
                               " (nothing is leased; scenefarm resume " + s.queue + ")\n"
                         : "")
            << "  oldest pending " << s.oldest_pending_age_seconds << " s\n"
            << "  workers live " << s.workers_live << "  busy " << s.workers_busy << "\n  outcomes";
  const nlohmann::json outcomes = s.ToJson()["outcomes"];
  for (const auto& [k, v] : outcomes.items())
    std::cout << "  " << k << " " << v;
  std::cout << "\n  runs in progress " << s.runs_in_progress.size();
  for (const auto& r : s.runs_in_progress)
    std::cout << " " << r;
  std::cout << "\n";
  for (const auto& w : workers) {
    std::cout << "  worker " << w["id"].get<std::string>() << "  "
              << (w["busy"].get<bool>() ? "busy " + w["scene"].get<std::string>() : "idle")
              << "  last heartbeat "
              << static_cast<int64_t>(w["heartbeat_age_seconds"].get<double>()) << " s ago";
    if (w.value("comfyui_down", false)) {
      std::cout << "  LEASING PAUSED: ComfyUI down for "
                << static_cast<int64_t>(w.value("comfyui_down_seconds", 0.0)) << " s ("
                << w.value("comfyui_down_reason", std::string()) << ")";
    }
    std::string paused;
    for (const auto& q : w["paused_queues"]) {
      if (!paused.empty()) paused += ',';
      paused += q.get<std::string>();
    }
    std::cout << (paused.empty() ? "" : "  waiting on paused " + paused) << "\n";
  }
}

}  // namespace

nlohmann::json WorkerList(redis::Client& c, int64_t now_ms, size_t limit) {
  nlohmann::json list = nlohmann::json::array();
  auto w = c.Command({"ZREVRANGE", keys::kWorkers, "0", std::to_string(limit - 1), "WITHSCORES"});
  if (!w.ok()) return list;
  std::vector<std::vector<std::string>> cmds;
  std::vector<std::pair<std::string, double>> ids;
  for (size_t i = 0; i + 1 < w->elements.size(); i += 2) {
    ids.emplace_back(w->elements[i].str,
                     (now_ms - std::stod(w->elements[i + 1].AsString())) / 1000.0);
    cmds.push_back({"HMGET", keys::Worker(w->elements[i].str), "busy", "scene", "host",
                    "comfyui_down", "comfyui_down_since", "comfyui_down_reason", "paused_queues"});
  }
  if (cmds.empty()) return list;
  auto h = c.Pipeline(cmds);
  if (!h.ok()) return list;
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& f = (*h)[i].elements;
    const bool full = f.size() == 7;
    const bool busy = full && f[0].AsString() == "1";
    // Its ComfyUI down (or hung): the worker leases nothing until that ComfyUI answers again.
    const bool down = full && f[3].AsString() == "1";
    nlohmann::json entry = {{"id", ids[i].first},
                            {"busy", busy},
                            {"scene", busy ? f[1].AsString() : ""},
                            {"host", full ? f[2].AsString() : ""},
                            {"heartbeat_age_seconds", ids[i].second},
                            {"comfyui_down", down}};
    const nlohmann::json paused =
        full ? nlohmann::json::parse(f[6].AsString(), nullptr, false) : nlohmann::json();
    entry["paused_queues"] = paused.is_array() ? paused : nlohmann::json::array();
    if (down) {
      const std::string since = f[4].AsString();
      entry["comfyui_down_seconds"] =
          since.empty() ? 0.0 : std::max(0.0, (now_ms - std::atof(since.c_str())) / 1000.0);
      entry["comfyui_down_reason"] = f[5].AsString();
    }
    list.push_back(entry);
  }
  return list;
}

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
    auto now = h.queue.TimeMs();  // heartbeats are Redis times: ages by the same clock
    if (!now.ok()) {
      *exit_code = Fail("status: " + now.status().message());
      return;
    }
    const nlohmann::json workers = WorkerList(h.client, *now, 50);
    if (g.json) {
      nlohmann::json j = s->ToJson();
      j["workers"]["idle"] = s->workers_live - s->workers_busy;
      j["workers"]["list"] = workers;  // the 50 freshest heartbeats, live or not
      std::cout << j.dump() << "\n";
    } else {
      PrintHuman(*s, workers);
    }
    *exit_code = kExitOk;
  });
}

}  // namespace scenefarm::cli
