// The telemetry contract of seed 001 (docs/telemetry.md): per scene
// ARTIFACTS/<run>/<scene>/telemetry.json, per run artifact-metadata.json and run-summary.txt,
// and the validator behind `scenefarm validate RUN_DIR`. Field names are the seed's, exactly.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scenefarm/status.h"

namespace scenefarm::telemetry {

// The queue policy knobs a scene ran under (seed 001's CLI params).
struct Policy {
  double max_wait_seconds = 600;               // SceneMaxWaitSeconds
  int history_max_attempts = 0;                // SceneHistoryMaxAttempts, 0 = unbounded
  double poll_interval_seconds = 2;            // SceneHistoryPollIntervalSeconds
  double post_execution_timeout_seconds = 30;  // ScenePostExecutionTimeoutSeconds
  int retry_budget = 1;                        // SceneRetryBudget
  double done_marker_wait_seconds = 60;        // DoneMarkerWaitSeconds
};

// "unbounded" for 0, else the number: seed 001's pollLimit text.
std::string PollLimit(int history_attempt_limit);

inline const std::vector<std::string> kExitReasons = {"success", "maxWait", "attemptLimit",
                                                      "postExecution", "unknown"};

struct SceneTelemetry {
  // Who and what (scenefarm's additions around the seed's Telemetry object).
  std::string scene_id, run, prompt_id, worker_id;
  int64_t attempt = 0;
  std::string status;  // succeeded | failed | cancelled
  std::string error;   // why, when not succeeded
  int expected_frames = 0;
  std::string started_at, finished_at;  // ISO 8601 UTC
  std::vector<std::string> frames;      // image frames' file names in the scene directory
  // Every file collected into the scene directory (frames, videos, audio) with its kind:
  // "image", "video" or "audio" (telemetry.json's "Files").
  struct File {
    std::string name, kind;
  };
  std::vector<File> files;

  // Seed 001's Telemetry fields.
  Policy policy;
  double duration_seconds = 0;
  int history_attempts = 0;
  std::string history_exit_reason = "unknown";
  bool execution_success_detected = false;
  std::string execution_success_at;  // empty -> null
  bool post_execution_timeout_reached = false;
  std::string gpu_name;
  std::optional<double> vram_before_mb, vram_after_mb;
  std::vector<std::string> fallback_notes;
  bool done_marker_detected = false;
  double done_marker_wait_seconds = 0;
  bool forced_copy_triggered = false;
  int frame_count = 0;  // image frames only (a video or audio file is not a frame)

  void AddNote(const std::string& note);  // once per distinct note
  nlohmann::json ToJson() const;          // the telemetry.json document
  // The "[Scene id] Telemetry: k=v | ..." line of run-summary.txt.
  static std::string SummaryLine(const nlohmann::json& scene_doc);
};

// A fallback note's bounded reason, for counters and metric labels: gpu_memory_pressure,
// forced_copy, done_marker_timeout, done_marker_untrusted, done_marker_node_missing,
// gpu_stats_fallback, gpu_stats_unavailable, cpu_device, prompt_lost, earlier_attempt_adopted,
// orphaned_done_tmp, frames_short, workflow_refused, or other.
std::string FallbackReason(const std::string& note);
// Every value FallbackReason can return, "other" last (the exporter's label values).
const std::vector<std::string>& FallbackReasonNames();
// A frame file by its extension (png, jpg, jpeg, webp, exr, gif, mp4, webm).
bool IsFrameFile(const std::filesystem::path& p);
// A file a render may save by its extension: a frame file, or a video or audio container
// (mkv, mov, avi, flac, mp3, wav, ogg, opus, m4a, aac).
bool IsOutputFile(const std::filesystem::path& p);
// The distinct reasons of a Telemetry object's System.FallbackNotes.
std::vector<std::string> FallbackReasons(const nlohmann::json& telemetry);

// ISO 8601 UTC with milliseconds, for a time in ms since the epoch.
std::string IsoTime(int64_t epoch_ms);
int64_t NowMs();

// Writes `data` to `path` through a temporary file and rename, so readers never see half.
Status WriteFileAtomically(const std::filesystem::path& path, const std::string& data);

// Reads every <run_dir>/*/telemetry.json and writes artifact-metadata.json, then
// run-summary.txt: a reader that sees the summary sees both.
Status AssembleRun(const std::filesystem::path& run_dir, const Policy& policy);

// Every violation of the contract in a run directory, one line each; empty when it holds.
std::vector<std::string> ValidateRun(const std::filesystem::path& run_dir);

}  // namespace scenefarm::telemetry
