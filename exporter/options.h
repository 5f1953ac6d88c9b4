// scenefarm-exporter's settings: every one a flag and a SCENEFARM_* variable (the flag wins).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "scenefarm/status.h"

namespace scenefarm::exporter {

struct ExporterOptions {
  std::string listen = "127.0.0.1:9870";               // SCENEFARM_EXPORTER_LISTEN
  std::string redis_url = "redis://127.0.0.1:6379/0";  // SCENEFARM_REDIS_URL
  std::vector<std::string> queues = {"scenes"};        // SCENEFARM_QUEUE (+ all in sf:queues)
  std::vector<std::string> comfyui_urls = {"http://127.0.0.1:8188"};  // SCENEFARM_COMFYUI_URL
  // SCENEFARM_LLM_URL, else seed 001's LOCAL_LLM_HEALTHCHECK_URL; LOCAL_LLM_SKIP_HEALTHCHECK=1
  // (or --llm-skip) turns the probe off.
  std::string llm_url;
  bool llm_skip = false;
  // SCENEFARM_LLM_MODEL, else seed 000's LOCAL_LLM_MODEL: with a model named, a generation
  // probe (a one-token chat completion, POST /v1/chat/completions) runs on its own thread
  // every llm_generation_interval_seconds (SCENEFARM_LLM_GENERATION_INTERVAL_SECONDS), each
  // allowed llm_generation_timeout_seconds (SCENEFARM_LLM_GENERATION_TIMEOUT_SECONDS): longer
  // than the 120 s the latency alert looks for, so that a slow model is measured, not cut off.
  std::string llm_model;
  double llm_generation_interval_seconds = 60;
  double llm_generation_timeout_seconds = 300;
  std::string web_config;      // SCENEFARM_WEB_CONFIG: exporter-toolkit web config (TLS, auth)
  double timeout_seconds = 5;  // SCENEFARM_EXPORTER_TIMEOUT_SECONDS: per source
  // SCENEFARM_EXPORTER_COLLECTOR_DEADLINE_SECONDS: how long a scrape waits for each collector
  // (they run at once); one that misses it reports success 0 and no families. Below Prometheus's
  // scrape_timeout (10 s by default).
  double collector_deadline_seconds = 8;
  // SCENEFARM_EXPORTER_STUCK_SECONDS: /healthz answers 503 while a collector has been running
  // this long (a source hung past every timeout).
  double stuck_seconds = 60;
  double live_window_seconds = 30;  // SCENEFARM_EXPORTER_LIVE_WINDOW_SECONDS: heartbeat age
  bool worker_labels = false;       // SCENEFARM_EXPORTER_WORKER_LABELS: per-worker series
  std::string gpu_source = "auto";  // SCENEFARM_GPU_SOURCE: auto|nvml|system_stats|nvidia-smi|none
  std::string log_level = "info";   // SCENEFARM_LOG_LEVEL
  // SCENEFARM_ARTIFACTS_DIR: where workers write runs (the worker's default); the pages show
  // its frames and files (docs/ui.md).
  std::string artifacts_dir = "./artifacts";
  bool web_disable_ui = false;  // SCENEFARM_WEB_DISABLE_UI: no /ui/ pages
  // The JSON API's actions (enqueue, cancel, retry, pause, resume, purge): off unless
  // --web.enable-actions (SCENEFARM_WEB_ENABLE_ACTIONS), and then only for a user of the web
  // config's basic_auth_users carrying the CSRF token (docs/api.md).
  bool web_enable_actions = false;
  // SCENEFARM_WEB_MAX_BODY_BYTES: the largest request body (POST /api/scenes) read; 413 above.
  size_t web_max_body_bytes = size_t{64} << 20;
  // SCENEFARM_MAX_SCENE_BYTES: POST /api/scenes refuses a scene document over this (the CLI's
  // --max-scene-bytes, same variable).
  size_t max_scene_bytes = size_t{1} << 20;

  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
  }
  std::chrono::milliseconds llm_generation_interval() const {
    return std::chrono::milliseconds(static_cast<int64_t>(llm_generation_interval_seconds * 1000));
  }
  std::chrono::milliseconds llm_generation_timeout() const {
    return std::chrono::milliseconds(static_cast<int64_t>(llm_generation_timeout_seconds * 1000));
  }
  std::chrono::milliseconds collector_deadline() const {
    return std::chrono::milliseconds(static_cast<int64_t>(collector_deadline_seconds * 1000));
  }
  std::chrono::milliseconds stuck() const {
    return std::chrono::milliseconds(static_cast<int64_t>(stuck_seconds * 1000));
  }
  std::chrono::milliseconds live_window() const {
    return std::chrono::milliseconds(static_cast<int64_t>(live_window_seconds * 1000));
  }
};

// kInvalidArgument with a usage message on bad input; kAborted (message = help) for --help.
Result<ExporterOptions> ParseExporterOptions(int argc, const char* const* argv);

}  // namespace scenefarm::exporter
