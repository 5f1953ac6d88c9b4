#include "comfyui_renderer.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "collect.h"
#include "scenefarm/gpu.h"
#include "scenefarm/log.h"

namespace scenefarm::worker {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

bool IsOutOfMemory(const std::string& type, const std::string& message) {
  return type.find("OutOfMemoryError") != std::string::npos ||
         (type == "RuntimeError" && message.find("can't allocate memory") != std::string::npos);
}

// Splits "a/b/c" into subfolder "a/b" and name "c", as SaveImage does.
std::pair<std::string, std::string> SplitPrefix(const std::string& prefix) {
  const auto slash = prefix.rfind('/');
  if (slash == std::string::npos) return {"", prefix};
  return {prefix.substr(0, slash), prefix.substr(slash + 1)};
}

// An earlier attempt's files in the scene directory: replaced by this attempt's.
void RemoveEarlierFrames(const fs::path& scene_dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(scene_dir, ec)) {
    if (e.is_regular_file() && telemetry::IsOutputFile(e.path())) fs::remove(e.path(), ec);
  }
}

// Records one collected file in the telemetry and the scene's result.
void RecordFile(telemetry::SceneTelemetry& t, json& outputs, const collect::OutputFile& f) {
  if (f.kind == "image") t.frames.push_back(f.filename);
  t.files.push_back({f.filename, f.kind});
  outputs.push_back(
      {{"filename", f.filename}, {"subfolder", f.subfolder}, {"type", f.type}, {"kind", f.kind}});
}

std::string NoFilesError() {
  return "the prompt finished but produced no frames (no image, video or audio file reported)";
}

}  // namespace

struct ComfyUiRenderer::JobState {
  std::string prompt_id;  // this attempt's, or the earlier attempt's it adopted
  std::string prefix;
  json workflow;
  bool adopted = false;
  bool marker_node = false;          // ComfyUI has scenefarm's marker nodes
  bool has_marker = false;           // the workflow writes done markers (markers not empty)
  std::vector<std::string> markers;  // their paths relative to ComfyUI's output directory
  int resubmits = 0;
  std::vector<std::string> notes;
  // VRAM read before submission when ComfyUI was idle (nothing of ours in flight), so the
  // reading is from before this scene's render rather than during the previous one's.
  bool gpu_read = false;
  std::string gpu_name;
  std::optional<double> vram_before_mb;
  std::vector<std::string> gpu_notes;
};

struct ComfyUiRenderer::Completion {
  Completion(Status s, std::optional<comfyui::HistoryEntry> e = std::nullopt)
      : status(std::move(s)), entry(std::move(e)) {}
  Status status;
  std::optional<comfyui::HistoryEntry> entry;
  bool ended_by_events = false;  // the events said it ended but /history never did
  bool cancelled = false;
};

std::string PromptIdFor(const std::string& scene_id, int64_t attempt) {
  return scene_id + "-a" + std::to_string(attempt);
}
std::string PromptIdFor(const queue::LeasedScene& lease) {
  return PromptIdFor(lease.id, lease.attempt);
}
std::string OutputPrefixFor(const std::string& run, const std::string& scene_id, int64_t attempt) {
  return "scenefarm/" + run + "/" + scene_id + "/a" + std::to_string(attempt);
}
std::string OutputPrefixFor(const queue::LeasedScene& lease) {
  return OutputPrefixFor(lease.run, lease.id, lease.attempt);
}

int RewriteOutputPrefixes(json& workflow, const std::string& prefix) {
  int n = 0;
  for (auto& [id, node] : workflow.items()) {
    if (node.is_object() && node.contains("inputs") && node["inputs"].is_object() &&
        node["inputs"].contains("filename_prefix") &&
        node["inputs"]["filename_prefix"].is_string()) {
      node["inputs"]["filename_prefix"] = prefix;
      ++n;
    }
  }
  return n;
}

telemetry::Policy PolicyOf(const WorkerOptions& o) {
  telemetry::Policy p;
  p.max_wait_seconds = o.scene_max_wait_seconds;
  p.history_max_attempts = o.scene_history_max_attempts;
  p.poll_interval_seconds = o.scene_history_poll_interval_seconds;
  p.post_execution_timeout_seconds = o.scene_post_execution_timeout_seconds;
  p.retry_budget = o.scene_retry_budget;
  p.done_marker_wait_seconds = o.done_marker_wait_seconds;
  return p;
}

ComfyUiRenderer::ComfyUiRenderer(const WorkerOptions& options)
    : options_(options),
      client_(options.comfyui_url,
              {2000ms, WorkerOptions::Ms(options.comfyui_request_timeout_seconds), nullptr,
               static_cast<size_t>(options.comfyui_max_response_mb * 1024 * 1024)}),
      events_(options.comfyui_url, options.worker_id) {
  if (!options_.comfyui_websocket) events_.Disable();
}

ComfyUiRenderer::JobState& ComfyUiRenderer::StateOf(Job& job) {
  if (!job.renderer_state) {
    auto st = std::make_shared<JobState>();
    st->prompt_id = PromptIdFor(job.lease);
    st->prefix = OutputPrefixFor(job.lease);
    job.renderer_state = st;
  }
  return *static_cast<JobState*>(job.renderer_state.get());
}

fs::path ComfyUiRenderer::SceneDir(const Job& job) const {
  return fs::path(options_.artifacts_dir) / job.lease.run / job.lease.id;
}

bool ComfyUiRenderer::DoneMarkerAvailable() {
  // Asked again every minute: ComfyUI may restart with the custom node installed or removed.
  if (has_marker_ && Clock::now() - marker_checked_ < 60s) return *has_marker_;
  auto r = client_.HasNode(kSaveImageMarkerNode);
  if (r.ok()) {
    if (!has_marker_ || *has_marker_ != *r)
      log::Info("done_marker_node", {{"available", *r}, {"comfyui", client_.base_url()}});
    has_marker_ = *r;
    marker_checked_ = Clock::now();
  }
  return has_marker_.value_or(false);
}

void ComfyUiRenderer::PrepareWorkflow(const Job& job, JobState& st, const std::string& prefix) {
  st.workflow = job.scene.workflow;
  st.marker_node = DoneMarkerAvailable();
  st.markers.clear();
  if (RewriteOutputPrefixes(st.workflow, prefix) > 0 && st.marker_node)
    st.markers = AddDoneMarkers(st.workflow, prefix);
  st.has_marker = !st.markers.empty();
}

bool ComfyUiRenderer::AdoptEarlierAttempt(Job& job, JobState& st) {
  // A scene taken over from a worker that died may have rendered (or still be rendering) in
  // this ComfyUI under an earlier attempt's prompt_id: use that instead of rendering again.
  // Attempts up to the last failed one are not adopted: their result was judged and refused.
  const int64_t oldest =
      std::max<int64_t>({1, job.lease.attempt - 3, job.lease.failed_attempt + 1});
  for (int64_t a = job.lease.attempt - 1; a >= oldest; --a) {
    const std::string earlier = PromptIdFor(job.lease.id, a);
    auto h = client_.History(earlier);
    bool adopt = false;
    std::string how;
    if (h.ok() && h->has_value() && (**h).success) {
      adopt = true;
      how = "finished";
    } else if (h.ok() && !h->has_value()) {
      auto pos = client_.QueuePosition(earlier);
      if (pos.ok() && !pos->empty()) {
        adopt = true;
        how = *pos;
      }
    }
    if (!adopt) continue;
    st.prompt_id = earlier;
    st.prefix = OutputPrefixFor(job.lease.run, job.lease.id, a);
    st.adopted = true;
    // The same workflow and prefix give the markers that attempt was submitted with.
    PrepareWorkflow(job, st, st.prefix);
    st.workflow = nullptr;  // not resubmitted: a lost adopted prompt fails the attempt
    st.notes.push_back("adopted attempt " + std::to_string(a) + "'s prompt (" + how +
                       " in ComfyUI) instead of rendering again");
    log::Info("earlier_attempt_adopted",
              {{"scene_id", job.lease.id}, {"prompt_id", earlier}, {"state", how}});
    return true;
  }
  return false;
}

Status ComfyUiRenderer::SubmitUntilReachable(Job& job, JobState& st) {
  // An unreachable ComfyUI (restarting, overloaded) is waited for with backoff while the
  // heartbeat keeps the lease: the scene's retry budget is not spent on it.
  const auto until = Clock::now() + WorkerOptions::Ms(options_.comfyui_unreachable_seconds);
  auto backoff = 250ms;
  bool logged = false;
  while (true) {
    Status s = client_.Submit(st.workflow, st.prompt_id, options_.worker_id);
    // A POST that timed out (kDeadlineExceeded) is not sent again: ComfyUI may still accept it,
    // and the same prompt twice renders twice. The worker releases the scene; its next attempt
    // looks this one up in /history and /queue and adopts it (AdoptEarlierAttempt).
    if (s.ok() || s.code() != StatusCode::kUnavailable) return s;
    if (!logged) {
      log::Warn("comfyui_unreachable", {{"scene_id", job.lease.id}, {"error", s.ToString()}});
      logged = true;
    }
    if (Clock::now() + backoff > until) {
      return Status::Unavailable("ComfyUI unreachable for " +
                                 std::to_string(options_.comfyui_unreachable_seconds) +
                                 " s: " + s.message());
    }
    const auto wake = Clock::now() + backoff;
    auto stopping = [&] { return job.stopping != nullptr && job.stopping->load(); };
    while (Clock::now() < wake && !job.abandon && !job.cancel_requested && !stopping())
      std::this_thread::sleep_for(20ms);
    if (job.abandon) return Status::Aborted("render abandoned");
    if (job.cancel_requested) return Status::Aborted("cancelled before submission");
    if (stopping()) return Status::Aborted("worker stopping before submission");
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 5000ms);
  }
}

Status ComfyUiRenderer::Submit(Job& job) {
  JobState& st = StateOf(job);
  events_.EnsureConnected();  // before the prompt starts, so no event is missed
  if (job.lease.attempt > 1 && AdoptEarlierAttempt(job, st)) return Status::Ok();
  if (in_flight_.empty()) {
    telemetry::SceneTelemetry probe;
    ReadGpu(&probe.vram_before_mb, probe);
    st.gpu_read = true;
    st.gpu_name = probe.gpu_name;
    st.vram_before_mb = probe.vram_before_mb;
    st.gpu_notes = probe.fallback_notes;
  }
  PrepareWorkflow(job, st, st.prefix);
  Status s = SubmitUntilReachable(job, st);
  if (!s.ok()) {
    if (s.code() == StatusCode::kInvalidArgument) {
      // Dead-lettered at once: its telemetry still says why.
      telemetry::SceneTelemetry t = StartTelemetry(job, st);
      t.AddNote("ComfyUI refused the workflow; nothing was rendered");
      Record(job, t, {s}, Clock::now());
    }
    return s;
  }
  in_flight_.insert(st.prompt_id);
  log::Info("prompt_submitted", {{"scene_id", job.lease.id},
                                 {"prompt_id", st.prompt_id},
                                 {"prefix", st.prefix},
                                 {"done_marker", st.has_marker}});
  return Status::Ok();
}

telemetry::SceneTelemetry ComfyUiRenderer::StartTelemetry(const Job& job,
                                                          const JobState& st) const {
  telemetry::SceneTelemetry t;
  t.scene_id = job.lease.id;
  t.run = job.lease.run;
  t.prompt_id = st.prompt_id;
  t.worker_id = options_.worker_id;
  t.attempt = job.lease.attempt;
  t.expected_frames = job.scene.expected_frames.value_or(0);
  t.policy = PolicyOf(options_);
  t.started_at = telemetry::IsoTime(telemetry::NowMs());
  for (const auto& n : st.notes)
    t.AddNote(n);
  return t;
}

void ComfyUiRenderer::ReadGpu(std::optional<double>* free_mb, telemetry::SceneTelemetry& t) {
  auto stats = client_.SystemStats();
  std::vector<gpu::Reading> readings;
  if (stats.ok()) readings = gpu::FromSystemStats(*stats);
  if (readings.empty()) {
    auto nvml = gpu::ReadNvml();
    if (nvml.ok()) {
      readings = *nvml;
      t.AddNote("/system_stats unavailable; using NVML fallback");
    } else {
      auto smi = gpu::ReadNvidiaSmi();
      if (smi.ok()) {
        readings = *smi;
        t.AddNote("/system_stats unavailable; using nvidia-smi fallback");
      } else {
        t.AddNote("GPU telemetry unavailable: /system_stats, NVML and nvidia-smi all failed");
        return;
      }
    }
  }
  const gpu::Reading& r = readings.front();
  if (r.type == "cpu") t.AddNote("ComfyUI runs on CPU; VRAM figures are host RAM");
  if (t.gpu_name.empty()) t.gpu_name = r.name;
  *free_mb = r.free_mb;
}

// AwaitCompletion's state between its steps.
struct ComfyUiRenderer::WaitLoop {
  Clock::time_point start;
  Clock::time_point next_poll;  // the next /history look
  int64_t connections = 0;      // the socket's connections when last looked
  std::optional<Clock::time_point> ended_at, unreachable_since;
  bool check_lost = false;  // look in /queue whether ComfyUI still knows the prompt
};

ComfyUiRenderer::Completion ComfyUiRenderer::AwaitCompletion(Job& job, JobState& st,
                                                             telemetry::SceneTelemetry& t) {
  const std::string& pid = st.prompt_id;
  const auto interval = WorkerOptions::Ms(options_.scene_history_poll_interval_seconds);
  // With the socket up, /history is the safety net at the poll interval; without it, the
  // only source. Either way the first look is at once (an adopted prompt may be finished).
  WaitLoop w;
  w.start = w.next_poll = Clock::now();
  w.connections = events_.connections();
  while (true) {
    if (job.abandon) return {Status::Aborted("render abandoned")};
    if (job.cancel_requested) {
      WithdrawOrLog(job, pid, "cancel requested");
      Completion c{Status::Ok()};
      c.cancelled = true;
      return c;
    }
    events_.EnsureConnected();
    if (events_.connections() != w.connections) {
      w.connections = events_.connections();  // reconnected: events may have been missed
      w.next_poll = Clock::now();
      w.check_lost = true;
    }
    auto ev = events_.Get(pid);
    if (ev && ev->ended() && !w.ended_at) {
      w.ended_at = Clock::now();
      w.next_poll = Clock::now();
      if (ev->success_ms > 0) t.execution_success_at = telemetry::IsoTime(ev->success_ms);
    }
    if (Clock::now() >= w.next_poll) {
      if (auto done = PollHistory(job, st, w, t)) return std::move(*done);
      // Once the events said it ended, the entry is due any moment: look often.
      w.next_poll = Clock::now() +
                    (w.ended_at ? std::min<std::chrono::milliseconds>(interval, 100ms) : interval);
    }
    const auto now = Clock::now();
    if (auto done = CheckWaitLimits(job, st, w, ev ? &*ev : nullptr, t, now))
      return std::move(*done);
    const auto slice = std::clamp<Clock::duration>(w.next_poll - now, 1ms, 250ms);
    if (events_.connected()) {
      // Any event wakes us; the loop re-reads this prompt's state.
      events_.WaitForChange(std::chrono::duration_cast<std::chrono::milliseconds>(slice));
    } else {
      std::this_thread::sleep_for(std::min<Clock::duration>(slice, 20ms));
    }
  }
}

std::optional<ComfyUiRenderer::Completion> ComfyUiRenderer::PollHistory(
    Job& job, JobState& st, WaitLoop& w, telemetry::SceneTelemetry& t) {
  const std::string& pid = st.prompt_id;
  auto h = client_.History(pid);
  ++t.history_attempts;
  if (h.ok()) {
    if (w.unreachable_since) w.check_lost = true;  // ComfyUI is back: did it restart?
    w.unreachable_since.reset();
    if (h->has_value()) return Completion{Status::Ok(), std::move(*h)};
    if (!w.ended_at && (w.check_lost || t.history_attempts % 5 == 0)) {
      w.check_lost = false;
      return ResubmitIfLost(job, st, t);
    }
  } else if (h.status().code() == StatusCode::kInternal) {
    // ComfyUI answered with something unreadable (a malformed entry, a 4xx): this attempt
    // fails and is retried within the budget; waiting would not change the answer.
    log::Warn("history_unreadable", {{"scene_id", job.lease.id}, {"error", h.status().ToString()}});
    return Completion{h.status()};
  } else if (!w.unreachable_since) {
    w.unreachable_since = Clock::now();
    log::Warn("comfyui_unreachable",
              {{"scene_id", job.lease.id}, {"error", h.status().ToString()}});
  }
  return std::nullopt;
}

std::optional<ComfyUiRenderer::Completion> ComfyUiRenderer::ResubmitIfLost(
    Job& job, JobState& st, telemetry::SceneTelemetry& t) {
  const std::string& pid = st.prompt_id;
  auto pos = client_.QueuePosition(pid);
  if (!pos.ok() || !pos->empty()) return std::nullopt;  // queued or running (or unknown)
  auto again = client_.History(pid);
  if (!again.ok()) return std::nullopt;
  if (again->has_value()) return Completion{Status::Ok(), std::move(*again)};
  // Neither queued, running nor in history: ComfyUI restarted and forgot it.
  if (st.resubmits >= 3 || st.workflow.is_null()) {
    return Completion{Status::Unavailable("ComfyUI lost prompt " + pid + " " +
                                          std::to_string(st.resubmits + 1) + " times")};
  }
  ++st.resubmits;
  t.AddNote("ComfyUI lost the prompt (restart?); resubmitted");
  log::Warn("prompt_lost", {{"scene_id", job.lease.id}, {"prompt_id", pid}});
  Status s = client_.Submit(st.workflow, pid, options_.worker_id);
  if (s.code() == StatusCode::kUnavailable || s.code() == StatusCode::kDeadlineExceeded) {
    // The ComfyUI that forgot the prompt is still coming back (port closed, a 5xx) or did not
    // answer in time (it may have taken the prompt): not the scene's failure. The next look
    // finds the prompt queued, or lost again and resubmitted (at most 3 times); the wait's
    // limits (unreachable window, SceneMaxWaitSeconds) bound it.
    log::Warn("prompt_resubmit_failed", {{"scene_id", job.lease.id}, {"error", s.ToString()}});
    return std::nullopt;
  }
  if (!s.ok()) return Completion{s};
  return std::nullopt;
}

std::optional<ComfyUiRenderer::Completion> ComfyUiRenderer::CheckWaitLimits(
    Job& job, JobState& st, const WaitLoop& w, const comfyui::PromptEvents* ev,
    telemetry::SceneTelemetry& t, Clock::time_point now) {
  const std::string& pid = st.prompt_id;
  if (w.ended_at) {
    if (now - *w.ended_at < WorkerOptions::Ms(options_.scene_post_execution_timeout_seconds))
      return std::nullopt;
    t.history_exit_reason = "postExecution";
    t.post_execution_timeout_reached = true;
    Completion c{Status::Ok()};
    c.ended_by_events = true;
    if (ev && (ev->error || ev->interrupted)) {
      c.status = Status::Internal(
          "ComfyUI reported " +
          (ev->error ? ev->error_type + ": " + ev->error_message : std::string("an interrupt")) +
          " and /history never showed the prompt");
    }
    return c;
  }
  const bool attempt_limit = options_.scene_history_max_attempts > 0 &&
                             t.history_attempts >= options_.scene_history_max_attempts;
  if (attempt_limit || now - w.start >= WorkerOptions::Ms(options_.scene_max_wait_seconds)) {
    t.history_exit_reason = attempt_limit ? "attemptLimit" : "maxWait";
    WithdrawOrLog(job, pid, t.history_exit_reason);  // interrupted before the scene is retried
    return Completion{Status::DeadlineExceeded(
        t.history_exit_reason + ": prompt " + pid + " not finished after " +
        std::to_string(t.history_attempts) + " /history polls and " +
        std::to_string(static_cast<int>(Seconds(now - w.start))) + " s")};
  }
  if (w.unreachable_since &&
      now - *w.unreachable_since >= WorkerOptions::Ms(options_.comfyui_unreachable_seconds)) {
    return Completion{
        Status::Unavailable("ComfyUI unreachable for " +
                            std::to_string(static_cast<int>(Seconds(now - *w.unreachable_since))) +
                            " s while rendering")};
  }
  return std::nullopt;
}

void ComfyUiRenderer::WithdrawOrLog(const Job& job, const std::string& prompt_id,
                                    const std::string& why) {
  // A prompt that cannot be withdrawn renders on, unwanted: said, since nothing else will.
  if (Status s = client_.Withdraw(prompt_id); !s.ok()) {
    log::Warn("prompt_not_withdrawn", {{"scene_id", job.lease.id},
                                       {"prompt_id", prompt_id},
                                       {"why", why},
                                       {"error", s.ToString()}});
  }
}

RenderOutcome ComfyUiRenderer::Wait(Job& job) {
  JobState& st = StateOf(job);
  const auto start = Clock::now();
  telemetry::SceneTelemetry t = StartTelemetry(job, st);
  if (st.gpu_read) {
    t.gpu_name = st.gpu_name;
    t.vram_before_mb = st.vram_before_mb;
    for (const auto& n : st.gpu_notes)
      t.AddNote(n);
  } else {
    ReadGpu(&t.vram_before_mb, t);
  }
  Completion c = AwaitCompletion(job, st, t);
  events_.Forget(st.prompt_id);
  in_flight_.erase(st.prompt_id);
  if (c.status.code() == StatusCode::kAborted) return {c.status};  // another worker goes on
  if (c.cancelled) {
    ReadGpu(&t.vram_after_mb, t);
    t.status = "cancelled";
    return Record(job, t, {Status::Ok(), json::object(), /*cancelled=*/true}, start);
  }
  if (c.entry) {
    t.history_exit_reason = "success";
    t.execution_success_detected = c.entry->success;
    if (c.entry->success && t.execution_success_at.empty()) {
      t.execution_success_at =
          telemetry::IsoTime(c.entry->finished_ms > 0 ? c.entry->finished_ms : telemetry::NowMs());
    }
  }
  ReadGpu(&t.vram_after_mb, t);
  if (!c.status.ok()) return Record(job, t, {c.status}, start);
  if (c.entry && !c.entry->success) {
    const auto& e = *c.entry;
    if (IsOutOfMemory(e.error_type, e.error_message)) {
      t.AddNote("GPU memory pressure detected");
      if (Status freed = client_.Free(/*unload_models=*/true, /*free_memory=*/true); !freed.ok()) {
        log::Warn("comfyui_free_failed", {{"scene_id", job.lease.id}, {"error", freed.ToString()}});
        t.AddNote("POST /free failed after the out-of-memory error: " + freed.ToString());
      }
      return Record(job, t, {Status::Internal(e.error_type + ": " + e.error_message)}, start);
    }
    if (e.interrupted) {
      return Record(job, t, {Status::Internal("interrupted in ComfyUI (not by scenefarm)")}, start);
    }
    return Record(job, t,
                  {Status::Internal((e.error_type.empty() ? "execution error" : e.error_type) +
                                    ": " + e.error_message)},
                  start);
  }
  RenderOutcome out = options_.comfyui_output_dir.empty()
                          ? CollectOverView(job, st, c.entry ? &*c.entry : nullptr, t)
                          : Collect(job, st, c.entry ? &*c.entry : nullptr, t);
  return Record(job, t, std::move(out), start);
}

RenderOutcome ComfyUiRenderer::Collect(Job& job, JobState& st, const comfyui::HistoryEntry* entry,
                                       telemetry::SceneTelemetry& t) {
  const fs::path out_dir = options_.comfyui_output_dir;
  const auto [subfolder, name] = SplitPrefix(st.prefix);
  auto prefix_dir = collect::SafeJoin(out_dir, subfolder, name);
  if (!prefix_dir.ok()) return {prefix_dir.status()};
  const fs::path dir = prefix_dir->parent_path();
  std::vector<fs::path> markers;
  for (const auto& m : st.markers) {
    const auto [msub, mname] = SplitPrefix(m);
    auto p = collect::SafeJoin(out_dir, msub, mname);
    if (!p.ok()) return {p.status()};
    markers.push_back(p->lexically_normal());
  }
  // The done markers: written after their files by the nodes that wrote them.
  AwaitMarker(job, st, t, [&](std::chrono::milliseconds limit) {
    const auto until = Clock::now() + limit;
    for (const auto& m : markers) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (!collect::WaitForFile(m, std::max(left, 0ms), job.abandon)) return false;
    }
    return true;
  });
  if (job.abandon) return {Status::Aborted("render abandoned")};
  if (const int orphans = collect::RemoveOrphanedMarkerTemps(dir, name); orphans > 0) {
    t.AddNote("removed " + std::to_string(orphans) + " orphaned .done.tmp file(s)");
    log::Warn("orphaned_done_tmp_removed", {{"scene_id", job.lease.id}, {"count", orphans}});
  }
  const done_marker::Listing listing =
      t.done_marker_detected ? done_marker::Read(markers) : done_marker::Listing{};
  // The candidates: every file /history reported; else (no entry: postExecution) what the
  // markers list, or the prefix's files.
  std::vector<std::pair<fs::path, collect::OutputFile>> files;
  if (entry) {
    for (const auto& o : collect::ReportedOutputs(entry->raw)) {
      if (o.type != "output") continue;
      auto p = collect::SafeJoin(out_dir, o.subfolder, o.filename);
      if (!p.ok()) return {p.status()};
      files.emplace_back(p->lexically_normal(), o);
    }
  } else {
    std::vector<fs::path> found(listing.files.begin(), listing.files.end());
    if (found.empty() || !listing.error.empty()) found = collect::FilesForPrefix(dir, name);
    for (const auto& f : found) {
      files.push_back({f,
                       {f.filename().string(), fs::relative(f.parent_path(), out_dir).string(),
                        "output", collect::KindOf(f.filename().string())}});
    }
  }
  std::vector<fs::path> paths;
  for (const auto& f : files)
    paths.push_back(f.first);
  // A marker is trusted only when it lists every file and every file it lists is there.
  const std::string untrusted =
      t.done_marker_detected ? done_marker::Untrusted(listing, paths) : "";
  if (!untrusted.empty()) {
    t.done_marker_detected = false;
    t.AddNote("done marker not trusted: " + untrusted);
    log::Warn("done_marker_untrusted", {{"scene_id", job.lease.id}, {"why", untrusted}});
  }
  if (!t.done_marker_detected) {
    const std::string reason = !untrusted.empty() ? "done marker not trusted: " + untrusted
                               : st.has_marker    ? "done marker not seen within the wait"
                               : st.marker_node   ? "no save node a done marker can follow"
                                                  : "done-marker node not installed in ComfyUI";
    const auto fc =
        done_marker::WaitAndDescribe({job.lease.id, job.lease.run, st.prompt_id, reason,
                                      job.lease.attempt, dir, options_.stability_window_seconds},
                                     paths, WorkerOptions::Ms(options_.stability_window_seconds),
                                     options_.stability_retries, job.abandon);
    if (job.abandon) return {Status::Aborted("render abandoned")};
    t.forced_copy_triggered = true;
    t.AddNote(fc.stable ? "Forced copy after stability retries"
                        : "Forced copy after stability retries; files still changing");
    if (Status owner = ConfirmLease(job); !owner.ok()) return {owner};
    WriteForcedCopyDebug(job, fc.written_ms, fc.debug_text);
    log::Warn("forced_copy", {{"scene_id", job.lease.id},
                              {"candidate_dir", dir.string()},
                              {"file_count", files.size()},
                              {"stable", fc.stable}});
  }
  if (Status owner = ConfirmLease(job); !owner.ok()) return {owner};
  const fs::path scene_dir = SceneDir(job);
  RemoveEarlierFrames(scene_dir);
  json outputs = json::array();
  for (const auto& [f, o] : files) {
    if (f.extension() == ".png" && !collect::PngComplete(f))
      return {Status::Internal("frame " + f.filename().string() + " is truncated or not a PNG")};
    if (Status s = collect::LinkOrCopy(f, scene_dir / f.filename()); !s.ok()) return {s};
    RecordFile(t, outputs, o);
  }
  t.frame_count = static_cast<int>(t.frames.size());
  if (t.files.empty()) return {Status::Internal(NoFilesError())};
  return {Status::Ok(), {{"prompt_id", st.prompt_id}, {"outputs", outputs}}};
}

RenderOutcome ComfyUiRenderer::CollectOverView(Job& job, JobState& st,
                                               const comfyui::HistoryEntry* entry,
                                               telemetry::SceneTelemetry& t) {
  // The worker cannot see ComfyUI's output directory: the markers and files come over /view.
  const auto [subfolder, name] = SplitPrefix(st.prefix);
  std::set<std::string> listed;  // "<subfolder>/<name>" of every file the markers list
  std::string untrusted;
  AwaitMarker(job, st, t, [&](std::chrono::milliseconds limit) {
    const auto until = Clock::now() + limit;
    const auto every = std::min<std::chrono::milliseconds>(
        500ms, WorkerOptions::Ms(options_.scene_history_poll_interval_seconds));
    for (const auto& m : st.markers) {
      const auto [msub, mname] = SplitPrefix(m);
      while (true) {
        if (job.abandon) return false;
        auto bytes = client_.View({mname, msub, "output"});
        if (bytes.ok()) {
          auto parsed = collect::ParseMarker(*bytes);
          if (!parsed.ok() && untrusted.empty())
            untrusted = mname + ": " + parsed.status().message();
          if (parsed.ok()) {
            for (const auto& f : parsed->files)
              listed.insert(msub + "/" + f);
          }
          break;
        }
        if (Clock::now() + every > until) return false;
        std::this_thread::sleep_for(every);
      }
    }
    return true;
  });
  if (job.abandon) return {Status::Aborted("render abandoned")};
  if (!entry) {
    return {Status::Unavailable(
        "/history never listed the outputs and SCENEFARM_COMFYUI_OUTPUT_DIR is unset: the frames "
        "cannot be found over /view")};
  }
  std::vector<collect::OutputFile> files;
  for (const auto& o : collect::ReportedOutputs(entry->raw)) {
    if (o.type == "output") files.push_back(o);
  }
  if (t.done_marker_detected && untrusted.empty()) {
    for (const auto& o : files) {
      if (!listed.count(o.subfolder + "/" + o.filename)) {
        untrusted = "it does not list " + o.filename;
        break;
      }
    }
    if (untrusted.empty() && files.empty()) untrusted = "ComfyUI reported no file for it to list";
  }
  if (t.done_marker_detected && !untrusted.empty()) {
    t.done_marker_detected = false;
    t.AddNote("done marker not trusted: " + untrusted);
    log::Warn("done_marker_untrusted", {{"scene_id", job.lease.id}, {"why", untrusted}});
  }
  if (!t.done_marker_detected) {
    // No marker: give the writer one stability window before fetching.
    std::this_thread::sleep_for(WorkerOptions::Ms(options_.stability_window_seconds));
    t.forced_copy_triggered = true;
    t.AddNote("Forced copy after stability retries; fetched over /view");
    const int64_t now_ms = telemetry::NowMs();
    std::ostringstream dbg;
    dbg << "scenefarm forced copy\nscene: " << job.lease.id << "\nprompt_id: " << st.prompt_id
        << "\ncandidate dir: " << client_.base_url() << "/view?subfolder=" << subfolder
        << "\nfile count: " << files.size() << "\nlast write time: unknown (over /view)"
        << (untrusted.empty() ? "" : "\nreason: done marker not trusted: " + untrusted)
        << "\nwritten at: " << telemetry::IsoTime(now_ms) << "\n";
    if (Status owner = ConfirmLease(job); !owner.ok()) return {owner};
    WriteForcedCopyDebug(job, now_ms, dbg.str());
    log::Warn("forced_copy", {{"scene_id", job.lease.id}, {"over", "view"}});
  }
  if (Status owner = ConfirmLease(job); !owner.ok()) return {owner};
  const fs::path scene_dir = SceneDir(job);
  RemoveEarlierFrames(scene_dir);
  json outputs = json::array();
  for (const auto& o : files) {
    auto safe = collect::SafeJoin(scene_dir, "", o.filename);
    if (!safe.ok()) return {safe.status()};
    auto bytes = client_.View({o.filename, o.subfolder, o.type});
    if (!bytes.ok()) return {bytes.status()};
    if (fs::path(o.filename).extension() == ".png" && !collect::PngCompleteBytes(*bytes))
      return {Status::Internal("frame " + o.filename + " is truncated or not a PNG")};
    if (Status s = telemetry::WriteFileAtomically(*safe, *bytes); !s.ok()) return {s};
    RecordFile(t, outputs, o);
  }
  t.frame_count = static_cast<int>(t.frames.size());
  if (t.files.empty()) return {Status::Internal(NoFilesError())};
  return {Status::Ok(), {{"prompt_id", st.prompt_id}, {"outputs", outputs}}};
}

RenderOutcome ComfyUiRenderer::Record(Job& job, telemetry::SceneTelemetry& t, RenderOutcome out,
                                      Clock::time_point start) {
  t.duration_seconds = Seconds(Clock::now() - start);
  t.finished_at = telemetry::IsoTime(telemetry::NowMs());
  if (t.status.empty()) t.status = out.status.ok() ? "succeeded" : "failed";
  if (!out.status.ok()) t.error = out.status.ToString();
  if (out.status.ok() && t.expected_frames > 0 && t.frame_count < t.expected_frames) {
    t.AddNote("FrameCount " + std::to_string(t.frame_count) + " below expected_frames " +
              std::to_string(t.expected_frames));
    log::Warn(
        "frames_short",
        {{"scene_id", job.lease.id}, {"frames", t.frame_count}, {"expected", t.expected_frames}});
  }
  const json doc = t.ToJson();
  // A failed attempt writes only its telemetry.json: it asks first too (a success asked before
  // its frames).
  if (Status owner = ConfirmLease(job); !owner.ok()) {
    log::Warn("telemetry_not_written", {{"scene_id", job.lease.id}, {"error", owner.ToString()}});
    return {owner};
  }
  if (Status s =
          telemetry::WriteFileAtomically(SceneDir(job) / "telemetry.json", doc.dump(2) + "\n");
      !s.ok()) {
    log::Warn("telemetry_not_written", {{"scene_id", job.lease.id}, {"error", s.ToString()}});
  }
  if (out.status.ok() && !out.cancelled) {
    out.result["frame_count"] = t.frame_count;
    out.result["expected_frames"] = t.expected_frames;
    out.result["telemetry"] = doc["Telemetry"];
  }
  out.telemetry = doc["Telemetry"];
  return out;
}

Status ComfyUiRenderer::ConfirmLease(Job& job) {
  if (!job.confirm_lease || job.lease_confirmed) return Status::Ok();
  // Asked again while Redis does not answer (or answers with an error), for one lease period at
  // most: past it the lease has run out anyway. Then nothing is written and the job ends as
  // kAborted (the worker releases the scene, its budget kept), never as a failed attempt.
  const auto until = Clock::now() + options_.lease();
  auto pause = 100ms;
  Status last;
  for (;;) {
    if (job.abandon) return Status::Aborted("render abandoned");
    last = job.confirm_lease();
    if (last.ok()) {
      job.lease_confirmed = true;
      return last;
    }
    if (last.code() == StatusCode::kAborted) {
      log::Warn("lease_lost_before_writing",
                {{"scene_id", job.lease.id}, {"attempt", job.lease.attempt}});
      return last;
    }
    log::Warn("lease_unconfirmed", {{"scene_id", job.lease.id}, {"error", last.ToString()}});
    if (Clock::now() + pause > until) break;
    const auto wake = Clock::now() + pause;
    while (Clock::now() < wake && !job.abandon)
      std::this_thread::sleep_for(10ms);
    pause = std::min<std::chrono::milliseconds>(pause * 2, 2000ms);
  }
  return Status::Aborted("the lease could not be confirmed within a lease period (" +
                         last.ToString() + "): nothing written");
}

void ComfyUiRenderer::AwaitMarker(Job& job, const JobState& st, telemetry::SceneTelemetry& t,
                                  const std::function<bool(std::chrono::milliseconds)>& wait) {
  if (!st.marker_node) {
    t.AddNote("done-marker node not installed in ComfyUI");
    return;
  }
  if (!st.has_marker) {
    t.AddNote("no save node a done marker can follow (SaveImage or VHS_VideoCombine)");
    return;
  }
  const auto t0 = Clock::now();
  t.done_marker_detected = wait(WorkerOptions::Ms(options_.done_marker_wait_seconds));
  t.done_marker_wait_seconds = Seconds(Clock::now() - t0);
  if (t.done_marker_detected) {
    log::Info("done_marker_detected",
              {{"scene_id", job.lease.id}, {"wait_seconds", t.done_marker_wait_seconds}});
  } else if (!job.abandon) {
    t.AddNote("done marker not seen within " +
              std::to_string(static_cast<int>(options_.done_marker_wait_seconds)) + " s");
  }
}

void ComfyUiRenderer::WriteForcedCopyDebug(const Job& job, int64_t now_ms,
                                           const std::string& text) const {
  // forced-copy-debug-2026-11-23T22-30-01.txt (no ':' in file names, for SMB shares)
  std::string name = "forced-copy-debug-" + telemetry::IsoTime(now_ms).substr(0, 19) + ".txt";
  std::replace(name.begin(), name.end(), ':', '-');
  if (Status s = telemetry::WriteFileAtomically(SceneDir(job) / name, text); !s.ok()) {
    log::Warn("forced_copy_debug_unwritten", {{"scene_id", job.lease.id}, {"error", s.ToString()}});
  }
}

Status ComfyUiRenderer::Probe() {
  return client_.Ping();
}

void ComfyUiRenderer::Withdraw(Job& job) {
  in_flight_.erase(StateOf(job).prompt_id);
  WithdrawOrLog(job, StateOf(job).prompt_id, "withdrawn by the worker");
}

}  // namespace scenefarm::worker
