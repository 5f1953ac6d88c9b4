// scenefarm repair [--dry-run]: reclaims expired leases, requeues scenes whose worker is gone,
// assembles finished runs no worker has assembled yet, deletes orphaned .done.tmp files, reports
// disk pressure. --dry-run changes nothing. Lease deadlines are judged by the Redis server's
// clock, and the writes go in batches (QueueOptions::script_batch per script call).
#include <sys/statvfs.h>

#include <filesystem>
#include <iostream>

#include "commands.h"
#include "scenefarm/run_assembly.h"

namespace scenefarm::cli {
namespace fs = std::filesystem;
using json = nlohmann::json;

json DiskReport(const std::string& path) {
  struct statvfs s {};
  if (path.empty() || statvfs(path.c_str(), &s) != 0)
    return {{"path", path}, {"error", "not found"}};
  const double free = static_cast<double>(s.f_bavail) * s.f_frsize;
  const double total = static_cast<double>(s.f_blocks) * s.f_frsize;
  const double ratio = total > 0 ? free / total : 0;
  return {{"path", path},
          {"free_bytes", free},
          {"free_ratio", ratio},
          // Pressure: under 10 % or 5 GiB free, where a run's frames stop fitting.
          {"pressure", ratio < 0.10 || free < 5.0 * (1ULL << 30)}};
}

namespace {

struct RepairOpts {
  bool dry = false;
  std::string output_dir, artifacts_dir = "./artifacts";
  double live_window = 30;
  std::string tmp_age = "10m";
};

// .done.tmp files under output_dir older than `age`: markers whose writer died.
json OrphanedDoneTmps(const std::string& output_dir, std::chrono::milliseconds age) {
  json tmps = json::array();
  if (output_dir.empty()) return tmps;
  std::error_code ec;
  const auto cutoff = fs::file_time_type::clock::now() - age;
  for (auto it = fs::recursive_directory_iterator(output_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > 9 && name.compare(name.size() - 9, 9, ".done.tmp") == 0 &&
        it->is_regular_file() && fs::last_write_time(it->path(), ec) < cutoff) {
      tmps.push_back(it->path().string());
    }
  }
  return tmps;
}

// The writes: gone workers' leases expired and every expired lease reclaimed, finished runs
// assembled (into *assembled), orphaned markers deleted.
Status Repair(QueueHandle& h, const RepairOpts& o,
              const std::vector<std::pair<std::string, std::string>>& gone, const json& tmps,
              json* report, json* assembled) {
  auto n = h.queue.ExpireLeases(gone);
  auto moved = n.ok() ? h.queue.Reclaim(100000) : Result<int64_t>(n.status());
  if (!moved.ok()) return moved.status();
  (*report)["reclaimed"] = *moved;
  auto runs = telemetry::AssembleFinishedRuns(h.queue, h.client, o.artifacts_dir, nullptr);
  if (!runs.ok()) return runs.status();
  for (const auto& r : *runs) {
    json a = {
        {"run", r.run}, {"assembled", r.assembled}, {"contract_violations", r.contract_violations}};
    if (!r.has_artifacts) a["error"] = "no artifacts directory";
    if (!r.error.empty()) a["error"] = r.error;
    assembled->push_back(a);
  }
  for (const auto& t : tmps) {
    std::error_code ec;
    if (!fs::remove(t.get<std::string>(), ec) && ec)
      std::cerr << "scenefarm: repair: cannot delete " << t.get<std::string>() << ": "
                << ec.message() << "\n";
  }
  return Status::Ok();
}

void PrintRepair(const json& report, bool dry) {
  const std::string will = dry ? "would " : "";
  const json& exp = report["expired_leases"];
  const json& gw = report["gone_worker_leases"];
  const json& tmps = report["orphaned_done_tmp"];
  const json& assembled = report["finished_runs"];
  for (const auto& id : exp)
    std::cout << will << "reclaim " << id.get<std::string>() << " (lease expired)\n";
  for (const auto& l : gw)
    std::cout << will << "requeue " << l["id"].get<std::string>() << " (worker "
              << l["worker"].get<std::string>() << " is gone)\n";
  for (const auto& t : tmps)
    std::cout << will << "delete " << t.get<std::string>() << " (orphaned marker)\n";
  for (const auto& r : assembled) {
    std::cout << will << "assemble run " << r["run"].get<std::string>();
    if (r.contains("error")) std::cout << ": " << r["error"].get<std::string>();
    std::cout << "\n";
  }
  for (const auto& d : report["disk"]) {
    if (d.contains("error")) {
      std::cout << "disk " << d["path"].get<std::string>() << ": not found\n";
    } else {
      std::cout << "disk " << d["path"].get<std::string>() << ": "
                << static_cast<int64_t>(d["free_bytes"].get<double>() / (1 << 20)) << " MiB free ("
                << static_cast<int>(d["free_ratio"].get<double>() * 100) << " %)"
                << (d["pressure"].get<bool>() ? " PRESSURE" : "") << "\n";
    }
  }
  if (exp.empty() && gw.empty() && tmps.empty() && assembled.empty())
    std::cout << "nothing to repair\n";
}

// Reads what needs repair, repairs it unless o.dry, reports. The exit code.
int RunRepair(Global& g, const RepairOpts& o) {
  auto age = ParseDuration(o.tmp_age);
  if (!age.ok()) {
    std::cerr << "scenefarm: repair: " << age.status().message() << "\n";
    return kExitUsage;
  }
  QueueHandle h(g);
  auto expired = h.queue.ExpiredLeases();
  if (!expired.ok()) return Fail("repair: " + expired.status().message());
  auto gone = h.queue.LeasesOfGoneWorkers(
      std::chrono::milliseconds(static_cast<int64_t>(o.live_window * 1000)));
  if (!gone.ok()) return Fail("repair: " + gone.status().message());
  json report = {{"dry_run", o.dry}, {"queue", g.queue}};
  json exp = json::array();
  for (const auto& id : *expired)
    exp.push_back(id);
  json gw = json::array();
  for (const auto& [id, worker] : *gone)
    gw.push_back({{"id", id}, {"worker", worker}});
  json assembled = json::array();
  const json tmps = OrphanedDoneTmps(o.output_dir, *age);
  if (o.dry) {
    auto runs = h.queue.FinishedRuns();
    if (!runs.ok()) return Fail("repair: " + runs.status().message());
    for (const auto& r : *runs)
      assembled.push_back({{"run", r}});
  } else if (Status s = Repair(h, o, *gone, tmps, &report, &assembled); !s.ok()) {
    return Fail("repair: " + s.message());
  }
  report["expired_leases"] = exp;
  report["gone_worker_leases"] = gw;
  report["orphaned_done_tmp"] = tmps;
  report["finished_runs"] = assembled;
  report["disk"] = json::array({DiskReport(o.artifacts_dir)});
  if (!o.output_dir.empty()) report["disk"].push_back(DiskReport(o.output_dir));
  if (g.json) {
    std::cout << report.dump() << "\n";
  } else {
    PrintRepair(report, o.dry);
  }
  return kExitOk;
}

}  // namespace

void RegisterRepair(CLI::App& app, Global& g, int* exit_code) {
  auto* cmd =
      app.add_subcommand("repair",
                         "reclaim expired leases, requeue scenes of gone workers, delete orphaned "
                         ".done.tmp files, report disk pressure");
  auto o = std::make_shared<RepairOpts>();
  cmd->add_flag("--dry-run", o->dry, "print what would change, change nothing");
  cmd->add_option("--comfyui-output-dir", o->output_dir, "where to look for orphaned .done.tmp")
      ->envname("SCENEFARM_COMFYUI_OUTPUT_DIR");
  cmd->add_option("--artifacts-dir", o->artifacts_dir)->envname("SCENEFARM_ARTIFACTS_DIR");
  cmd->add_option("--live-window-seconds", o->live_window,
                  "a worker without a heartbeat this long is gone");
  cmd->add_option("--tmp-age", o->tmp_age, ".done.tmp files older than this are orphaned");
  cmd->add_flag("--json", g.json, "print JSON");
  cmd->callback([&g, o, exit_code] { *exit_code = RunRepair(g, *o); });
}

}  // namespace scenefarm::cli
