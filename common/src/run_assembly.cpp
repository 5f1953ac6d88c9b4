#include "scenefarm/run_assembly.h"

#include <fstream>

#include "scenefarm/keys.h"
#include "scenefarm/log.h"
#include "scenefarm/readings.h"

namespace scenefarm::telemetry {
namespace fs = std::filesystem;
using json = nlohmann::json;

AssembledRun AssembleFinishedRun(redis::Client& redis, const fs::path& artifacts_dir,
                                 const std::string& run, const Policy& policy) {
  AssembledRun out;
  out.run = run;
  const fs::path dir = artifacts_dir / run;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;  // a renderer that writes no artifacts
  out.has_artifacts = true;
  Status s = AssembleRun(dir, policy);
  out.assembled = s.ok();
  if (!s.ok()) out.error = s.ToString();
  const auto violations = s.ok() ? ValidateRun(dir) : std::vector<std::string>{};
  out.contract_violations = violations.size();
  log::Info("run_completed", {{"run", run},
                              {"dir", dir.string()},
                              {"assembled", s.ok()},
                              {"error", out.error},
                              {"contract_violations", violations.size()}});
  for (const auto& v : violations)
    log::Warn("telemetry_contract_violation", {{"run", run}, {"violation", v}});
  if (!violations.empty()) {  // scenefarm_telemetry_contract_violations_total
    // HINCRBY sf:farm:stats contract_violations N
    auto counted = redis.Command({"HINCRBY", keys::kFarmStats, readings::kContractViolations,
                                  std::to_string(violations.size())});
    if (!counted.ok())
      log::Warn(
          "contract_violations_uncounted",
          {{"run", run}, {"count", violations.size()}, {"error", counted.status().ToString()}});
  }
  return out;
}

Policy PolicyOfRun(const fs::path& run_dir, const Policy& fallback) {
  std::vector<fs::path> scenes;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run_dir, ec)) {
    if (entry.is_directory(ec) && fs::is_regular_file(entry.path() / "telemetry.json", ec))
      scenes.push_back(entry.path() / "telemetry.json");
  }
  std::sort(scenes.begin(), scenes.end());
  for (const auto& path : scenes) {
    std::ifstream in(path);
    const json doc = json::parse(in, nullptr, false);
    if (!doc.is_object() || !doc.contains("Telemetry") || !doc["Telemetry"].is_object()) continue;
    const json& t = doc["Telemetry"];
    auto number = [&](const char* k, double d) {
      return t.contains(k) && t[k].is_number() ? t[k].get<double>() : d;
    };
    // A count outside int (a hand-edited 1e300) is not converted: that would be undefined.
    auto count = [&](const char* k, int d) {
      const double v = number(k, d);
      return v >= 0 && v <= 1e9 ? static_cast<int>(v) : d;
    };
    Policy p = fallback;
    p.max_wait_seconds = number("MaxWaitSeconds", p.max_wait_seconds);
    p.poll_interval_seconds = number("PollIntervalSeconds", p.poll_interval_seconds);
    p.history_max_attempts = count("HistoryAttemptLimit", p.history_max_attempts);
    p.post_execution_timeout_seconds =
        number("PostExecutionTimeoutSeconds", p.post_execution_timeout_seconds);
    p.retry_budget = count("SceneRetryBudget", p.retry_budget);
    p.done_marker_wait_seconds = number("DoneMarkerWaitLimitSeconds", p.done_marker_wait_seconds);
    return p;
  }
  return fallback;
}

Result<std::vector<AssembledRun>> AssembleFinishedRuns(queue::Queue& queue, redis::Client& redis,
                                                       const fs::path& artifacts_dir,
                                                       const Policy* policy) {
  auto runs = queue.FinishedRuns();
  if (!runs.ok()) return runs.status();
  std::vector<AssembledRun> out;
  for (const auto& run : *runs) {
    auto claim = queue.ClaimFinishedRun(run);
    if (!claim.ok()) return claim.status();
    if (*claim == 0) continue;  // another worker or repair holds it
    const Policy p = policy ? *policy : PolicyOfRun(artifacts_dir / run, Policy{});
    out.push_back(AssembleFinishedRun(redis, artifacts_dir, run, p));
    const AssembledRun& a = out.back();
    if (a.has_artifacts && !a.assembled) {
      // Kept claimed: when the claim expires, the next worker or repair tries again.
      log::Warn("run_assembly_retried_later", {{"run", run}, {"error", a.error}});
      continue;
    }
    // The files are written (or there are none to write): only now is the claim given up.
    auto done = queue.RunAssembled(run, *claim);
    if (!done.ok()) {
      log::Warn("run_claim_not_ended", {{"run", run}, {"error", done.status().ToString()}});
    } else if (!*done) {
      log::Warn("run_claim_taken_over", {{"run", run}});
    }
  }
  return out;
}

}  // namespace scenefarm::telemetry
