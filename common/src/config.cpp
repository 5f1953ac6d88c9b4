#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <sstream>

#include "scenefarm/options.h"

namespace scenefarm {

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    item.erase(0, item.find_first_not_of(" \t"));
    item.erase(item.find_last_not_of(" \t") + 1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string DefaultWorkerId() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + "-" + std::to_string(getpid());
}

namespace {

void AddPolicyOptions(CLI::App& app, WorkerOptions& o) {
  app.add_option("--scene-max-wait-seconds", o.scene_max_wait_seconds, "SceneMaxWaitSeconds")
      ->envname("SCENEFARM_SCENE_MAX_WAIT_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--scene-history-max-attempts", o.scene_history_max_attempts,
                 "SceneHistoryMaxAttempts (0 = unbounded)")
      ->envname("SCENEFARM_SCENE_HISTORY_MAX_ATTEMPTS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--scene-history-poll-interval-seconds", o.scene_history_poll_interval_seconds,
                 "SceneHistoryPollIntervalSeconds")
      ->envname("SCENEFARM_SCENE_HISTORY_POLL_INTERVAL_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--scene-post-execution-timeout-seconds", o.scene_post_execution_timeout_seconds,
                 "ScenePostExecutionTimeoutSeconds")
      ->envname("SCENEFARM_SCENE_POST_EXECUTION_TIMEOUT_SECONDS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--scene-retry-budget", o.scene_retry_budget, "SceneRetryBudget")
      ->envname("SCENEFARM_SCENE_RETRY_BUDGET")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  app.add_option("--done-marker-wait-seconds", o.done_marker_wait_seconds, "DoneMarkerWaitSeconds")
      ->envname("SCENEFARM_DONE_MARKER_WAIT_SECONDS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--stability-window-seconds", o.stability_window_seconds,
                 "forced copy: output files unchanged this long")
      ->envname("SCENEFARM_STABILITY_WINDOW_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--stability-retries", o.stability_retries,
                 "forced copy: stability windows tried before copying anyway")
      ->envname("SCENEFARM_STABILITY_RETRIES")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--comfyui-websocket", o.comfyui_websocket,
                 "follow ComfyUI's /ws events (0: poll /history only)")
      ->envname("SCENEFARM_COMFYUI_WEBSOCKET")
      ->capture_default_str();
  app.add_option("--comfyui-unreachable-seconds", o.comfyui_unreachable_seconds,
                 "how long a scene waits for an unreachable ComfyUI before it is released")
      ->envname("SCENEFARM_COMFYUI_UNREACHABLE_SECONDS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--comfyui-request-timeout-seconds", o.comfyui_request_timeout_seconds,
                 "the longest one request to ComfyUI may take (a hung POST /prompt releases the "
                 "scene like an outage)")
      ->envname("SCENEFARM_COMFYUI_REQUEST_TIMEOUT_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--comfyui-max-response-mb", o.comfyui_max_response_mb,
                 "the largest answer read from ComfyUI (a /history entry, a frame over /view)")
      ->envname("SCENEFARM_COMFYUI_MAX_RESPONSE_MB")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--retry-backoff-seconds", o.retry_backoff_seconds)
      ->envname("SCENEFARM_RETRY_BACKOFF_SECONDS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--retry-backoff-max-seconds", o.retry_backoff_max_seconds)
      ->envname("SCENEFARM_RETRY_BACKOFF_MAX_SECONDS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
}

// What the worker reads of its host each heartbeat (worker/host_readings.h).
void AddReadingsOptions(CLI::App& app, WorkerOptions& o) {
  app.add_option("--gpu-source", o.gpu_source,
                 "where the worker reads its ComfyUI's GPUs: auto (NVML, then /system_stats, then "
                 "nvidia-smi), nvml, system_stats, nvidia-smi, none")
      ->envname("SCENEFARM_GPU_SOURCE")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "nvml", "system_stats", "nvidia-smi", "none"}));
  app.add_option("--comfyui-gpus", o.comfyui_gpus,
                 "the host GPUs (index or UUID, comma-separated) its ComfyUI uses; default all")
      ->envname("SCENEFARM_COMFYUI_GPUS");
}

}  // namespace

Result<WorkerOptions> ParseWorkerOptions(int argc, const char* const* argv) {
  WorkerOptions o;
  std::string queues = "scenes";
  CLI::App app{"scenefarm-worker: leases scenes from Redis and renders them through ComfyUI"};
  app.add_option("--redis-url", o.redis_url)->envname("SCENEFARM_REDIS_URL")->capture_default_str();
  app.add_option("--queue", queues, "queues in priority order, comma-separated")
      ->envname("SCENEFARM_QUEUE")
      ->capture_default_str();
  app.add_option("--comfyui-url", o.comfyui_url)
      ->envname("SCENEFARM_COMFYUI_URL")
      ->capture_default_str();
  app.add_option("--comfyui-output-dir", o.comfyui_output_dir)
      ->envname("SCENEFARM_COMFYUI_OUTPUT_DIR");
  app.add_option("--artifacts-dir", o.artifacts_dir)
      ->envname("SCENEFARM_ARTIFACTS_DIR")
      ->capture_default_str();
  app.add_option("--worker-id", o.worker_id, "default: hostname-pid")
      ->envname("SCENEFARM_WORKER_ID");
  app.add_option("--lease-seconds", o.lease_seconds)
      ->envname("SCENEFARM_LEASE_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--heartbeat-seconds", o.heartbeat_seconds)
      ->envname("SCENEFARM_HEARTBEAT_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--drain-seconds", o.drain_seconds)
      ->envname("SCENEFARM_DRAIN_SECONDS")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--pipeline-depth", o.pipeline_depth)
      ->envname("SCENEFARM_PIPELINE_DEPTH")
      ->capture_default_str()
      ->check(CLI::Range(0, 16));
  app.add_option("--idle-poll-seconds", o.idle_poll_seconds)
      ->envname("SCENEFARM_IDLE_POLL_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--log-level", o.log_level)
      ->envname("SCENEFARM_LOG_LEVEL")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  AddPolicyOptions(app, o);
  AddReadingsOptions(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return Status::Aborted(app.help());
  } catch (const CLI::ParseError& e) {
    return Status::InvalidArgument(std::string(e.what()) + "\nRun with --help for the options.");
  }
  o.queues = SplitList(queues);
  if (o.queues.empty()) return Status::InvalidArgument("--queue: at least one queue name");
  for (auto it = o.queues.begin(); it != o.queues.end(); ++it) {
    // A name is the hash tag of its keys (sf:{NAME}:...): braces would change the tag.
    if (it->find_first_of("{}") != std::string::npos)
      return Status::InvalidArgument("--queue: '" + *it + "' is not a queue name (no { or })");
    if (std::find(o.queues.begin(), it, *it) != it)
      return Status::InvalidArgument("--queue: '" + *it + "' is named twice");
  }
  if (o.worker_id.empty()) o.worker_id = DefaultWorkerId();
  if (o.heartbeat_seconds * 2 > o.lease_seconds) {
    return Status::InvalidArgument("--heartbeat-seconds must be at most half of --lease-seconds");
  }
  return o;
}

}  // namespace scenefarm
