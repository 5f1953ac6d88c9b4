#include "options.h"

#include <CLI/CLI.hpp>
#include <cstdlib>

#include "scenefarm/options.h"

namespace scenefarm::exporter {

Result<ExporterOptions> ParseExporterOptions(int argc, const char* const* argv) {
  ExporterOptions o;
  std::string queues = "scenes", comfyui = "http://127.0.0.1:8188";
  CLI::App app{"scenefarm-exporter: one Prometheus endpoint for the whole farm"};
  app.add_option("--listen", o.listen, "host:port of /metrics")
      ->envname("SCENEFARM_EXPORTER_LISTEN")
      ->capture_default_str();
  app.add_option("--redis-url", o.redis_url)->envname("SCENEFARM_REDIS_URL")->capture_default_str();
  app.add_option("--queue", queues, "queues, comma-separated (every queue in Redis is added)")
      ->envname("SCENEFARM_QUEUE")
      ->capture_default_str();
  app.add_option("--comfyui-url", comfyui, "ComfyUI instances, comma-separated ('' for none)")
      ->envname("SCENEFARM_COMFYUI_URL")
      ->capture_default_str();
  app.add_option("--llm-url", o.llm_url, "OpenAI-compatible endpoint (LM Studio, Ollama)")
      ->envname("SCENEFARM_LLM_URL");
  app.add_flag("--llm-skip", o.llm_skip, "do not probe the LLM (LOCAL_LLM_SKIP_HEALTHCHECK=1)");
  app.add_option("--llm-model", o.llm_model,
                 "model for the generation probe (a one-token chat completion); unset: none")
      ->envname("SCENEFARM_LLM_MODEL");
  app.add_option("--llm-generation-interval-seconds", o.llm_generation_interval_seconds)
      ->envname("SCENEFARM_LLM_GENERATION_INTERVAL_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--llm-generation-timeout-seconds", o.llm_generation_timeout_seconds)
      ->envname("SCENEFARM_LLM_GENERATION_TIMEOUT_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--web-config", o.web_config, "exporter-toolkit web config: TLS, basic auth")
      ->envname("SCENEFARM_WEB_CONFIG")
      ->check(CLI::ExistingFile);
  app.add_option("--timeout-seconds", o.timeout_seconds, "per source, per scrape")
      ->envname("SCENEFARM_EXPORTER_TIMEOUT_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--collector-deadline-seconds", o.collector_deadline_seconds,
                 "how long a scrape waits for each collector; a late one reports success 0")
      ->envname("SCENEFARM_EXPORTER_COLLECTOR_DEADLINE_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--stuck-seconds", o.stuck_seconds,
                 "/healthz answers 503 while a collector has been running this long")
      ->envname("SCENEFARM_EXPORTER_STUCK_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--live-window-seconds", o.live_window_seconds,
                 "a worker is live while its last heartbeat is this recent")
      ->envname("SCENEFARM_EXPORTER_LIVE_WINDOW_SECONDS")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--worker-labels", o.worker_labels, "per-worker series (one per worker id)")
      ->envname("SCENEFARM_EXPORTER_WORKER_LABELS");
  app.add_option("--gpu-source", o.gpu_source)
      ->envname("SCENEFARM_GPU_SOURCE")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "nvml", "system_stats", "nvidia-smi", "none"}));
  app.add_option("--artifacts-dir", o.artifacts_dir, "the workers' artifacts directory (frames)")
      ->envname("SCENEFARM_ARTIFACTS_DIR")
      ->capture_default_str();
  app.add_flag("--web.disable-ui,--web-disable-ui", o.web_disable_ui, "do not serve the /ui/ pages")
      ->envname("SCENEFARM_WEB_DISABLE_UI");
  app.add_flag("--web.enable-actions,--web-enable-actions", o.web_enable_actions,
               "allow the API's actions (enqueue, cancel, retry, pause, resume, purge) to users "
               "of the web config's basic_auth_users, with the CSRF token")
      ->envname("SCENEFARM_WEB_ENABLE_ACTIONS");
  app.add_option("--web.max-body-bytes,--web-max-body-bytes", o.web_max_body_bytes,
                 "the largest request body the API reads (POST /api/scenes)")
      ->envname("SCENEFARM_WEB_MAX_BODY_BYTES")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-scene-bytes", o.max_scene_bytes,
                 "POST /api/scenes refuses a scene document over this many bytes")
      ->envname("SCENEFARM_MAX_SCENE_BYTES")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--log-level", o.log_level)
      ->envname("SCENEFARM_LOG_LEVEL")
      ->capture_default_str()
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    return Status::Aborted(app.help());
  } catch (const CLI::ParseError& e) {
    return Status::InvalidArgument(std::string(e.what()) + "\nRun with --help for the options.");
  }
  // Seed 001's names for the LLM probe, honoured when ours are not set.
  if (o.llm_url.empty()) {
    if (const char* u = std::getenv("LOCAL_LLM_HEALTHCHECK_URL"); u && *u) o.llm_url = u;
  }
  if (o.llm_model.empty()) {
    if (const char* m = std::getenv("LOCAL_LLM_MODEL"); m && *m) o.llm_model = m;
  }
  if (const char* s = std::getenv("LOCAL_LLM_SKIP_HEALTHCHECK");
      s && (std::string(s) == "1" || std::string(s) == "true")) {
    o.llm_skip = true;
  }
  o.queues = SplitList(queues);
  o.comfyui_urls = SplitList(comfyui);
  return o;
}

}  // namespace scenefarm::exporter
