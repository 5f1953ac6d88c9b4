// Renders a scene through one ComfyUI (docs/rendering.md):
//  - submits the workflow under prompt_id "<scene>-a<attempt>" with every filename_prefix
//    rewritten to "scenefarm/<run>/<scene>/a<attempt>" (unique per attempt, which also defeats
//    ComfyUI's cache), with SaveImage replaced by ScenefarmSaveImage and a
//    ScenefarmVideoDoneMarker fed by each VHS_VideoCombine when ComfyUI has them; a taken-over
//    scene first looks for its earlier attempts in /history and /queue and adopts one it finds;
//  - races the /ws events against /history polling, bounded by the policy knobs, and records
//    HistoryExitReason success | maxWait | attemptLimit | postExecution | unknown;
//  - waits for the done markers (inotify) and trusts them only when they list every file
//    ComfyUI reported and those files exist; else forces a copy once the files are stable;
//  - links or copies every reported file (images, videos, audio) to ARTIFACTS/<run>/<scene>/
//    (or fetches them over /view) and writes telemetry.json with seed 001's fields.
// Not thread-safe: the worker calls it from its loop only.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "done_marker.h"
#include "renderer.h"
#include "scenefarm/comfyui.h"
#include "scenefarm/options.h"
#include "scenefarm/telemetry.h"

namespace scenefarm::worker {

// "<scene>-a<attempt>": a taken-over scene can find the earlier attempt in /history.
std::string PromptIdFor(const std::string& scene_id, int64_t attempt);
std::string PromptIdFor(const queue::LeasedScene& lease);
// "scenefarm/<run>/<scene>/a<attempt>": where this attempt's frames are written.
std::string OutputPrefixFor(const std::string& run, const std::string& scene_id, int64_t attempt);
std::string OutputPrefixFor(const queue::LeasedScene& lease);
// Rewrites filename_prefix of every node that has one; returns how many were rewritten.
int RewriteOutputPrefixes(nlohmann::json& workflow, const std::string& prefix);
// AddDoneMarkers and the markers' node names: done_marker.h.

telemetry::Policy PolicyOf(const WorkerOptions& options);

class ComfyUiRenderer : public Renderer {
 public:
  explicit ComfyUiRenderer(const WorkerOptions& options);
  Status Submit(Job& job) override;
  RenderOutcome Wait(Job& job) override;
  void Withdraw(Job& job) override;
  Status Probe() override;  // GET /prompt

 private:
  struct JobState;
  struct Completion;
  JobState& StateOf(Job& job);
  bool DoneMarkerAvailable();
  Status SubmitUntilReachable(Job& job, JobState& st);
  bool AdoptEarlierAttempt(Job& job, JobState& st);
  struct WaitLoop;
  // Waits for the prompt's end: events and /history polls (PollHistory, which looks in /queue
  // for a prompt ComfyUI lost, ResubmitIfLost), bounded by the policy (CheckWaitLimits).
  Completion AwaitCompletion(Job& job, JobState& st, telemetry::SceneTelemetry& t);
  std::optional<Completion> PollHistory(Job& job, JobState& st, WaitLoop& w,
                                        telemetry::SceneTelemetry& t);
  std::optional<Completion> ResubmitIfLost(Job& job, JobState& st, telemetry::SceneTelemetry& t);
  std::optional<Completion> CheckWaitLimits(Job& job, JobState& st, const WaitLoop& w,
                                            const comfyui::PromptEvents* ev,
                                            telemetry::SceneTelemetry& t,
                                            std::chrono::steady_clock::time_point now);
  // Withdraws (dequeues or interrupts) a prompt; a failure is logged with `why`.
  void WithdrawOrLog(const Job& job, const std::string& prompt_id, const std::string& why);
  RenderOutcome Collect(Job& job, JobState& st, const comfyui::HistoryEntry* entry,
                        telemetry::SceneTelemetry& t);
  RenderOutcome CollectOverView(Job& job, JobState& st, const comfyui::HistoryEntry* entry,
                                telemetry::SceneTelemetry& t);
  void ReadGpu(std::optional<double>* free_mb, telemetry::SceneTelemetry& t);
  // The markers' and prefix's workflow for an attempt: prefixes rewritten, markers added when
  // ComfyUI has the nodes.
  void PrepareWorkflow(const Job& job, JobState& st, const std::string& prefix);
  // Times `wait` (true: every marker came) and records DoneMarker* and the notes.
  void AwaitMarker(Job& job, const JobState& st, telemetry::SceneTelemetry& t,
                   const std::function<bool(std::chrono::milliseconds)>& wait);
  void WriteForcedCopyDebug(const Job& job, int64_t now_ms, const std::string& text) const;
  telemetry::SceneTelemetry StartTelemetry(const Job& job, const JobState& st) const;
  // Job::confirm_lease until it answers (with backoff while Redis does not), or the job is
  // abandoned: OK, or kAborted when the scene is no longer this attempt's.
  Status ConfirmLease(Job& job);
  RenderOutcome Record(Job& job, telemetry::SceneTelemetry& t, RenderOutcome outcome,
                       std::chrono::steady_clock::time_point start);
  std::filesystem::path SceneDir(const Job& job) const;

  const WorkerOptions options_;
  comfyui::Client client_;
  comfyui::EventStream events_;
  std::set<std::string> in_flight_;  // prompt ids submitted and not yet waited for or withdrawn
  std::optional<bool> has_marker_;
  std::chrono::steady_clock::time_point marker_checked_{};
};

}  // namespace scenefarm::worker
