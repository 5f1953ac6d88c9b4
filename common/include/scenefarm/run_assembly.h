// Assembling finished runs: whichever transition finished a run (an ack, a fail, a reclaim, a
// cancel), the run waits in the queue's runs_finished set until one process claims it (the
// worker that finishes its next scene, or `scenefarm repair`) and writes its
// artifact-metadata.json and run-summary.txt (docs/telemetry.md). A claim lasts
// QueueOptions::run_claim_seconds and ends only once the files are written, so a claimant that
// dies or hangs midway loses the run to the next one: every finished run is assembled, by one
// claimant at a time (twice only when a claimant outlives its claim).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "scenefarm/queue.h"
#include "scenefarm/redis.h"
#include "scenefarm/telemetry.h"

namespace scenefarm::telemetry {

struct AssembledRun {
  std::string run;
  bool has_artifacts = false;  // ARTIFACTS/<run> exists (a renderer may write none)
  bool assembled = false;
  std::string error;  // why assembly failed
  size_t contract_violations = 0;
};

// Assembles ARTIFACTS/<run>, validates it, logs run_completed (and each violation) and adds the
// violations to sf:farm:stats contract_violations (scenefarm_telemetry_contract_violations_total).
AssembledRun AssembleFinishedRun(redis::Client& redis, const std::filesystem::path& artifacts_dir,
                                 const std::string& run, const Policy& policy);

// The policy the run's scenes ran under, from the first scene's telemetry.json; `fallback`
// when no scene has one.
Policy PolicyOfRun(const std::filesystem::path& run_dir, const Policy& fallback);

// Claims every finished run of the queue (and every expired claim) and assembles the ones this
// call claimed, ending each claim after its files are written. `policy`: the policy to record;
// nullptr = each run's own (PolicyOfRun). kUnavailable etc. when the finished runs cannot be
// read; a claimed run whose assembly fails is reported in the result and stays claimed until
// its claim expires (then it is tried again).
Result<std::vector<AssembledRun>> AssembleFinishedRuns(queue::Queue& queue, redis::Client& redis,
                                                       const std::filesystem::path& artifacts_dir,
                                                       const Policy* policy);

}  // namespace scenefarm::telemetry
