// Every knob of the worker, with its default, unit and SCENEFARM_* variable. Only config.cpp
// reads flags and the environment; a flag wins over its variable.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "scenefarm/status.h"

namespace scenefarm {

struct WorkerOptions {
  // SCENEFARM_REDIS_URL: redis://... or redis+sentinel://... (redis.h); never logged.
  std::string redis_url = "redis://127.0.0.1:6379/0";
  // SCENEFARM_QUEUE: queues served, in priority order (comma-separated).
  std::vector<std::string> queues = {"scenes"};
  // SCENEFARM_COMFYUI_URL
  std::string comfyui_url = "http://127.0.0.1:8188";
  // SCENEFARM_COMFYUI_OUTPUT_DIR: ComfyUI's output directory as this worker sees it; empty =
  // fetch frames over /view.
  std::string comfyui_output_dir;
  // SCENEFARM_ARTIFACTS_DIR
  std::string artifacts_dir = "./artifacts";
  // SCENEFARM_WORKER_ID: stable across restarts when given; hostname-pid otherwise.
  std::string worker_id;
  // SCENEFARM_LEASE_SECONDS, SCENEFARM_HEARTBEAT_SECONDS, SCENEFARM_DRAIN_SECONDS
  double lease_seconds = 30;
  double heartbeat_seconds = 5;
  double drain_seconds = 600;
  // SCENEFARM_PIPELINE_DEPTH: scenes leased and submitted ahead of the one rendering.
  int pipeline_depth = 1;
  // Seed 001's policy knobs (SCENEFARM_SCENE_*).
  double scene_max_wait_seconds = 600;               // SceneMaxWaitSeconds
  int scene_history_max_attempts = 0;                // SceneHistoryMaxAttempts, 0 = unbounded
  double scene_history_poll_interval_seconds = 2;    // SceneHistoryPollIntervalSeconds
  double scene_post_execution_timeout_seconds = 30;  // ScenePostExecutionTimeoutSeconds
  int scene_retry_budget = 1;                        // SceneRetryBudget
  double done_marker_wait_seconds = 60;              // DoneMarkerWaitSeconds
  // SCENEFARM_STABILITY_WINDOW_SECONDS / _RETRIES: the forced copy waits until the output files
  // keep their size and mtime for one window, for at most this many windows (seed 000: 2 s, 3).
  double stability_window_seconds = 2;
  int stability_retries = 3;
  // SCENEFARM_COMFYUI_WEBSOCKET: follow /ws events (1) or poll /history only (0, for proxies that
  // break WebSockets).
  bool comfyui_websocket = true;
  // SCENEFARM_COMFYUI_UNREACHABLE_SECONDS: how long a scene waits for an unreachable ComfyUI
  // (holding its lease, not spending its retry budget); after it the scene is released (its
  // budget kept) and the worker leases nothing until that ComfyUI answers again.
  double comfyui_unreachable_seconds = 120;
  // SCENEFARM_COMFYUI_REQUEST_TIMEOUT_SECONDS: the longest one request to ComfyUI may take. A
  // POST /prompt that takes longer (ComfyUI accepting connections but not answering) is an
  // outage like an unreachable ComfyUI: the scene is released with its budget, leasing pauses.
  double comfyui_request_timeout_seconds = 30;
  // SCENEFARM_COMFYUI_MAX_RESPONSE_MB: the largest answer read from ComfyUI (a /history entry,
  // a frame over /view); a larger one fails that call (and the attempt) instead of filling memory.
  double comfyui_max_response_mb = 256;
  // SCENEFARM_RETRY_BACKOFF_SECONDS / _MAX_SECONDS: exponential backoff with full jitter.
  double retry_backoff_seconds = 5;
  double retry_backoff_max_seconds = 300;
  // SCENEFARM_IDLE_POLL_SECONDS: back-off of an idle worker's failed wake wait (queue-protocol.md).
  double idle_poll_seconds = 0.5;
  // SCENEFARM_LOG_LEVEL: debug, info, warn, error.
  std::string log_level = "info";
  // SCENEFARM_GPU_SOURCE: where the worker reads the GPUs of its ComfyUI at each heartbeat:
  // auto (NVML, then that ComfyUI's /system_stats, then nvidia-smi), nvml, system_stats,
  // nvidia-smi, none.
  std::string gpu_source = "auto";
  // SCENEFARM_COMFYUI_GPUS: which of the host's GPUs its ComfyUI uses, as NVML/nvidia-smi
  // indices or UUIDs, comma-separated (like the ComfyUI's CUDA_VISIBLE_DEVICES); empty = all.
  std::string comfyui_gpus;

  std::chrono::milliseconds lease() const { return Ms(lease_seconds); }
  std::chrono::milliseconds heartbeat() const { return Ms(heartbeat_seconds); }
  std::chrono::milliseconds drain() const { return Ms(drain_seconds); }
  static std::chrono::milliseconds Ms(double seconds) {
    return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
  }
};

// Parses flags and SCENEFARM_* variables. Returns kInvalidArgument with a usage message on bad
// input, and kAborted (message = the help text) for --help.
Result<WorkerOptions> ParseWorkerOptions(int argc, const char* const* argv);

std::vector<std::string> SplitList(const std::string& s);
std::string DefaultWorkerId();

}  // namespace scenefarm
