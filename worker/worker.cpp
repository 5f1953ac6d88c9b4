#include "worker.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <thread>
#include <utility>

#include "comfyui_renderer.h"
#include "host_readings.h"
#include "scenefarm/log.h"
#include "scenefarm/run_assembly.h"
#include "scenefarm/telemetry.h"

namespace scenefarm::worker {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

redis::Options RedisOptionsFor(const WorkerOptions& o) {
  redis::Options r;
  r.url = o.redis_url;
  return r;
}

std::vector<queue::Queue> MakeQueues(redis::Client& client, const WorkerOptions& o,
                                     const Clock& clock) {
  std::vector<queue::Queue> qs;
  for (const auto& name : o.queues) {
    queue::QueueOptions qo;
    qo.name = name;
    qo.default_retry_budget = o.scene_retry_budget;
    qs.emplace_back(client, qo, clock);
  }
  return qs;
}

// Sleeps up to d, in slices, returning early when `flag` is set.
void SleepUnless(const std::atomic<bool>& flag, std::chrono::milliseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (!flag && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(20ms, d));
  }
}

// Sleeps up to d, in slices, returning early when `until` says so.
template <typename Pred>
void SleepUntil(Pred until, std::chrono::milliseconds d) {
  const auto end = std::chrono::steady_clock::now() + d;
  while (!until() && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(20ms, d));
  }
}

// Retries a queue call while Redis is unreachable, for at most `budget` (the lease outlives
// nothing longer: after it, the scene is reclaimed and fencing refuses the late call).
template <typename F>
auto RetryUnavailable(F f, std::chrono::milliseconds budget) {
  auto backoff = 50ms;
  const auto until = std::chrono::steady_clock::now() + budget;
  while (true) {
    auto r = f();
    const StatusCode code = r.code();
    if ((code != StatusCode::kUnavailable && code != StatusCode::kDeadlineExceeded) ||
        std::chrono::steady_clock::now() + backoff > until) {
      return r;
    }
    std::this_thread::sleep_for(backoff);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 2000ms);
  }
}

}  // namespace

Worker::Worker(WorkerOptions options, Renderer& renderer, const Clock& clock)
    : options_(std::move(options)),
      renderer_(renderer),
      clock_(clock),
      redis_(RedisOptionsFor(options_)),
      queues_(MakeQueues(redis_, options_, clock_)),
      rng_(std::random_device{}()) {}

Worker::~Worker() = default;

queue::Queue* Worker::QueueFor(const Job& job) {
  for (auto& q : queues_) {
    if (q.name() == job.lease.queue) return &q;
  }
  // Never another queue's: its scripts would act on a scene of the same id there.
  log::Error("scene_queue_unknown", {{"scene_id", job.lease.id}, {"queue", job.lease.queue}});
  return nullptr;
}

int Worker::Run(const std::atomic<bool>& stop) {
  log::Info("worker_started", {{"worker_id", options_.worker_id},
                               {"redis", log::RedactUrl(options_.redis_url)},
                               {"queues", options_.queues},
                               {"pipeline_depth", options_.pipeline_depth}});
  stop_ = &stop;
  // A restarted worker under the same id starts with its ComfyUI presumed up.
  Status cleared =
      redis_
          .Pipeline({{"HSET", queue::WorkerKey(options_.worker_id), "comfyui_down", "0"},
                     {"HDEL", queue::WorkerKey(options_.worker_id), "comfyui_down_since",
                      "comfyui_down_reason"},
                     // A stop token left by an earlier run under this id would end a wait.
                     {"DEL", keys::WorkerWake(options_.worker_id)}})
          .status();
  if (!cleared.ok()) log::Warn("worker_state_unrecorded", {{"error", cleared.ToString()}});
  std::atomic<bool> done{false};
  std::thread heartbeat([&] { HeartbeatLoop(done, stop); });
  ResumeOwnLeases();
  while (!stop) {
    if (!FillPipeline() && jobs_.empty()) {
      WaitForWork(stop);
      continue;
    }
    if (jobs_.empty()) continue;
    std::shared_ptr<Job> job = jobs_.front();
    SetBusy(true, job->lease.id);  // written only when it changed: the ack's lease set it
    job->confirm_lease = [this, j = job.get()] { return ConfirmLease(*j); };
    const RenderOutcome outcome = renderer_.Wait(*job);
    job->confirm_lease = nullptr;
    // The ack leases the next scene in the same round trip (one round trip per scene).
    std::shared_ptr<Job> next;
    Finish(*job, outcome, &next);
    ++scenes_finished_;
    {
      std::lock_guard<std::mutex> lock(mu_);
      jobs_.pop_front();
    }
    if (next) {
      idle_rounds_ = 0;
      Admit(std::move(next));
    }
    if (jobs_.empty()) SetBusy(false, "");
  }
  Drain(stop);
  done = true;
  if (stop_write_fd_ >= 0) {  // ends the heartbeat thread's poll now, not at the next beat
    const char byte = 1;
    [[maybe_unused]] const ssize_t n = write(stop_write_fd_, &byte, 1);
  }
  heartbeat.join();
  log::Info("worker_stopped", {{"worker_id", options_.worker_id},
                               {"scenes_finished", scenes_finished_.load()},
                               {"redis_round_trips", redis_.round_trips()}});
  return 0;
}

void Worker::WaitForWork(const std::atomic<bool>& stop) {
  if (renderer_down_) {  // until the next probe of the renderer
    const auto now = std::chrono::steady_clock::now();
    if (next_probe_ > now)
      SleepUnless(stop, std::chrono::duration_cast<std::chrono::milliseconds>(next_probe_ - now));
    return;
  }
  SetBusy(false, "");
  // Blocks on the queues' wake lists (docs/queue-protocol.md, "Waking idle workers") until a
  // token comes (FillPipeline then leases), the next reclaim is due (it reclaims), or the first
  // delayed scene is due (it leases). The worker's own list gets a token when it is told to
  // stop, so the wait may be long.
  const auto now = std::chrono::steady_clock::now();
  auto until = last_reclaim_ + options_.heartbeat() + 10ms;  // past it: FillPipeline reclaims
  if (next_due_) until = std::min(until, std::max(*next_due_, now + 5ms));
  const auto block = std::chrono::duration_cast<std::chrono::milliseconds>(until - now);
  if (block <= 0ms || stop) return;
  std::vector<std::string> wake_keys;
  for (const auto& q : queues_)
    wake_keys.push_back(keys::QueueKeys(q.name()).Wake());
  wake_keys.push_back(keys::WorkerWake(options_.worker_id));
  auto r = redis_.BlockingPop(wake_keys, block);
  if (!r.ok()) {
    // Redis unreachable (or failing over): back off to 4x the interval, then lease again.
    log::Warn("idle_wait_failed", {{"error", r.status().ToString()}});
    idle_rounds_ = std::min(idle_rounds_ + 1, 4);
    SleepUnless(stop, WorkerOptions::Ms(options_.idle_poll_seconds) * idle_rounds_);
    return;
  }
  idle_rounds_ = 0;
  woken_by_.clear();
  // Ended by the reclaim's time alone: nothing became leasable (a token would have come; a
  // token lost with a crashed worker is pushed again by the reclaims), so no lease is asked.
  idle_timed_out_ =
      !r->has_value() && !(next_due_ && *next_due_ <= std::chrono::steady_clock::now());
  if (r->has_value()) {
    for (size_t i = 0; i < queues_.size(); ++i) {
      if (wake_keys[i] == (*r)->first) woken_by_ = queues_[i].name();
    }
  }
}

void Worker::NoteNextDue(int64_t due_ms) {
  if (due_ms < 0) return;
  const auto at = std::chrono::steady_clock::now() + std::chrono::milliseconds(due_ms);
  if (!next_due_ || at < *next_due_) next_due_ = at;
}

bool Worker::MayLease() const {
  return !*stop_ && !renderer_down_;
}

std::vector<std::string> Worker::QueueNames() const {
  std::vector<std::string> names;
  for (const auto& q : queues_)
    names.push_back(q.name());
  return names;
}

void Worker::NoteLeased(const queue::LeasedScene& lease) {
  log::Info("scene_leased", {{"queue", lease.queue},
                             {"scene_id", lease.id},
                             {"run", lease.run},
                             {"attempt", lease.attempt}});
}

void Worker::ResumeOwnLeases() {
  for (auto& q : queues_) {
    std::vector<queue::LeasedScene> resumed;
    Status s = RetryUnavailable(
        [&] {
          auto r = q.Resume(options_.worker_id, options_.lease());
          if (r.ok()) resumed = std::move(r).value();
          return r.status();
        },
        options_.lease());
    if (!s.ok()) {
      log::Warn("resume_failed", {{"queue", q.name()}, {"error", s.ToString()}});
      continue;
    }
    // Every resumed scene is held (its lease renewed by the heartbeat) from now on, not only
    // from its own turn to be submitted: the first Submit may wait out an unreachable ComfyUI.
    std::vector<std::shared_ptr<Job>> jobs;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& lease : resumed) {
        auto job = std::make_shared<Job>();
        job->lease = lease;
        log::Info("scene_resumed", {{"scene_id", lease.id}, {"attempt", lease.attempt}});
        admitting_.push_back(job);
        jobs.push_back(std::move(job));
      }
    }
    for (auto& job : jobs)
      Admit(job);
  }
}

bool Worker::FillPipeline() {
  bool leased_any = false;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_reclaim_ >= options_.heartbeat()) {
    last_reclaim_ = now;
    for (auto& q : queues_) {
      // Once a period for the whole farm: whichever worker comes first takes the turn.
      auto moved = q.ReclaimIfDue(options_.worker_id, options_.heartbeat());
      if (!moved.ok()) {
        log::Warn("reclaim_failed", {{"queue", q.name()}, {"error", moved.status().ToString()}});
      } else if (moved->value_or(0) > 0) {
        log::Info("leases_reclaimed", {{"queue", q.name()}, {"count", **moved}});
      }
    }
  }
  if (RendererDown()) return false;
  // The last ack's lease found every queue empty: wait for a wake rather than ask again now.
  if (std::exchange(queues_empty_, false)) return false;
  if (std::exchange(idle_timed_out_, false) && jobs_.empty()) return false;
  const std::string woken_by = std::exchange(woken_by_, "");
  std::string leased_from;
  while (jobs_.size() < static_cast<size_t>(1 + options_.pipeline_depth)) {
    std::shared_ptr<Job> job = LeaseOne();
    if (!job) break;
    if (leased_from.empty()) leased_from = job->lease.queue;
    leased_any = true;
    idle_rounds_ = 0;
    Admit(job);
    // Released: leasing waits for the renderer, or ends with the stop.
    if (renderer_down_ || *stop_) break;
  }
  if (!woken_by.empty() && !leased_from.empty() && leased_from != woken_by) {
    // Woken by one queue's token but leased from a queue before it (the worker's order): that
    // queue was not looked at, so its token goes back for another idle worker.
    const std::string key = keys::QueueKeys(woken_by).Wake();
    (void)redis_.Pipeline({{"RPUSH", key, "1"}, {"LTRIM", key, "0", "0"}});
  }
  return leased_any;
}

std::shared_ptr<Job> Worker::LeaseOne() {
  next_due_.reset();  // recomputed from the answers: every queue answers when none leases
  for (auto& q : queues_) {
    bool paused = false;
    int64_t due_ms = -1;
    auto r = q.Lease(options_.worker_id, options_.lease(), &paused, &due_ms);
    if (!r.ok()) {
      log::Warn("lease_failed", {{"queue", q.name()}, {"error", r.status().ToString()}});
      return nullptr;
    }
    NotePaused(q.name(), paused);
    if (!r->has_value()) {  // nothing due, or paused: the next queue
      NoteNextDue(due_ms);
      continue;
    }
    auto job = std::make_shared<Job>();
    job->lease = **r;
    NoteLeased(job->lease);
    return job;
  }
  return nullptr;
}

bool Worker::Admit(std::shared_ptr<Job> job) {
  job->stopping = stop_;
  {
    // Held from here: the heartbeat renews the lease through Submit's waits.
    std::lock_guard<std::mutex> lock(mu_);
    if (std::find(admitting_.begin(), admitting_.end(), job) == admitting_.end())
      admitting_.push_back(job);
  }
  Status s;
  bool known_down = false;
  auto scene = ParseScene(job->lease.doc);
  if (!scene.ok()) {
    s = Status::InvalidArgument("invalid scene document: " + scene.status().message());
  } else if (renderer_down_) {  // a resumed scene while the renderer is known to be down
    s = Status::Unavailable("the renderer did not answer its last probe");
    known_down = true;
  } else {
    job->scene = std::move(scene).value();
    s = renderer_.Submit(*job);
  }
  if (s.ok()) {
    job->submitted = true;
  } else if (job->cancel_requested && !job->abandon) {
    Finish(*job, {Status::Ok(), json::object(), /*cancelled=*/true});  // never submitted
  } else if (s.code() == StatusCode::kDeadlineExceeded ||
             (s.code() == StatusCode::kUnavailable && (known_down || !renderer_.Probe().ok()))) {
    // A scene never submitted because the renderer is known down is released, budget kept,
    // even if the renderer answers by now: the lease loop's probe resumes work.
    // Only when the renderer itself does not answer: a ComfyUI that answers its probe but keeps
    // refusing this scene's prompt (a 5xx for it alone) spends the scene's budget instead.
    // A submission that timed out (a hung ComfyUI) is released whatever the probe says: the
    // prompt may still be accepted, so it is not sent again; the next attempt adopts it.
    ReleaseInOutage(*job, s);
  } else {
    Finish(*job, {s});
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::erase(admitting_, job);
  if (s.ok()) jobs_.push_back(std::move(job));
  return s.ok();
}

void Worker::ReleaseInOutage(Job& job, const Status& why) {
  // The renderer, not the scene, failed: the scene goes back to the front of pending with its
  // budget for a worker whose ComfyUI answers, and this one leases nothing until its does. A
  // scene released this way max_outage_releases times is dead-lettered by the script instead.
  if (!renderer_down_) {
    renderer_down_ = true;
    probe_backoff_ = std::max<std::chrono::milliseconds>(
        WorkerOptions::Ms(options_.idle_poll_seconds), std::chrono::milliseconds(50));
    next_probe_ = std::chrono::steady_clock::now() + probe_backoff_;
    // Shown by `scenefarm status` (the worker's hash): leasing is paused until ComfyUI answers.
    Status shown = redis_
                       .Command({"HSET", queue::WorkerKey(options_.worker_id), "comfyui_down", "1",
                                 "comfyui_down_since", std::to_string(clock_.NowMs()),
                                 "comfyui_down_reason", why.ToString()})
                       .status();
    if (!shown.ok()) log::Warn("worker_state_unrecorded", {{"error", shown.ToString()}});
  }
  log::Warn(
      "renderer_unreachable",
      {{"worker_id", options_.worker_id}, {"scene_id", job.lease.id}, {"error", why.ToString()}});
  queue::Queue* q = QueueFor(job);
  if (q == nullptr) return;
  const std::string reason = "renderer unreachable: " + why.message();
  bool run_complete = false;
  std::string where;
  Status s = RetryUnavailable(
      [&] {
        auto r = q->ReleaseInOutage(job.lease, options_.worker_id, reason, &run_complete);
        if (r.ok()) where = *r;
        return r.status();
      },
      options_.lease());
  if (where == "dead") {
    log::Warn("scene_dead_lettered", {{"scene_id", job.lease.id}, {"reason", reason}});
  } else {
    log::Info("scene_released",
              {{"scene_id", job.lease.id}, {"reason", reason}, {"recorded", s.ok()}});
  }
  if (s.ok() && run_complete) AssembleFinishedRuns(*q);
}

bool Worker::RendererDown() {
  if (!renderer_down_) return false;
  const auto now = std::chrono::steady_clock::now();
  if (now < next_probe_) return true;
  if (Status s = renderer_.Probe(); !s.ok()) {
    probe_backoff_ = std::min<std::chrono::milliseconds>(probe_backoff_ * 2, 10000ms);
    next_probe_ = now + probe_backoff_;
    log::Debug("renderer_probe_failed",
               {{"error", s.ToString()}, {"next_probe_ms", probe_backoff_.count()}});
    return true;
  }
  renderer_down_ = false;
  Status shown = redis_
                     .Pipeline({{"HSET", queue::WorkerKey(options_.worker_id), "comfyui_down", "0"},
                                {"HDEL", queue::WorkerKey(options_.worker_id), "comfyui_down_since",
                                 "comfyui_down_reason"}})
                     .status();
  if (!shown.ok()) log::Warn("worker_state_unrecorded", {{"error", shown.ToString()}});
  log::Info("renderer_reachable", {{"worker_id", options_.worker_id}});
  return false;
}

void Worker::Finish(Job& job, const RenderOutcome& outcome, std::shared_ptr<Job>* next) {
  const auto& id = job.lease.id;
  if (job.lease_lost) {
    log::Warn("lease_lost", {{"scene_id", id}, {"attempt", job.lease.attempt}});
    if (job.submitted) renderer_.Withdraw(job);
    return;
  }
  queue::Queue* queue = QueueFor(job);
  if (queue == nullptr) return;
  queue::Queue& q = *queue;
  Status s;
  bool run_complete = false;
  const json& tel = outcome.telemetry;
  if (outcome.cancelled) {
    s = RetryUnavailable(
        [&] { return q.AckCancelled(job.lease, options_.worker_id, &run_complete); },
        options_.lease());
    log::Info("scene_cancelled", {{"scene_id", id}});
  } else if (outcome.status.ok()) {
    json result = outcome.result;
    if (tel.is_object()) result["fallback_reasons"] = telemetry::FallbackReasons(tel);
    if (next != nullptr && MayLease()) {
      // One round trip: the ack, the next lease (the slot this ack frees) and the busy marks.
      // A retry after a lost reply gets the scene the first call leased, never a second one.
      std::string next_scene;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (jobs_.size() > 1 && jobs_.front().get() == &job) next_scene = jobs_[1]->lease.id;
      }
      queue::AckLeaseResult got;
      s = RetryUnavailable(
          [&] {
            auto r = q.AckAndLease(job.lease, options_.worker_id, result, options_.lease(),
                                   next_scene, QueueNames());
            if (r.ok()) got = std::move(r).value();
            return r.status();
          },
          options_.lease());
      if (s.ok()) {
        run_complete = got.run_complete;
        for (const auto& [name, paused] : got.looked_at)
          NotePaused(name, paused);
        busy_mark_ = !next_scene.empty() ? next_scene : got.next ? got.next->id : "";
        if (got.next) {
          auto leased = std::make_shared<Job>();
          leased->lease = std::move(*got.next);
          NoteLeased(leased->lease);
          *next = std::move(leased);
        } else {
          queues_empty_ = true;
          next_due_.reset();
          NoteNextDue(got.next_due_ms);
        }
      }
    } else {
      s = RetryUnavailable(
          [&] { return q.Ack(job.lease, options_.worker_id, result, &run_complete); },
          options_.lease());
    }
    auto field = [&](const char* k) { return tel.is_object() ? tel.value(k, json()) : json(); };
    log::Info("scene_rendered", {{"scene_id", id},
                                 {"run", job.lease.run},
                                 {"attempt", job.lease.attempt},
                                 {"duration_seconds", field("DurationSeconds")},
                                 {"exit_reason", field("HistoryExitReason")},
                                 {"frames", field("FrameCount")},
                                 {"done_marker", field("DoneMarkerDetected")},
                                 {"forced_copy", field("ForcedCopyTriggered")}});
  } else if (outcome.status.code() == StatusCode::kAborted) {
    if (job.submitted) renderer_.Withdraw(job);
    ReleaseJob(job, "worker stopped before the render finished: " + outcome.status.message());
    return;
  } else {
    const bool permanent = outcome.status.code() == StatusCode::kInvalidArgument;
    const auto backoff = queue::RetryBackoff(
        job.lease.failures + 1, WorkerOptions::Ms(options_.retry_backoff_seconds),
        WorkerOptions::Ms(options_.retry_backoff_max_seconds), rng_);
    std::string where;
    s = RetryUnavailable(
        [&] {
          auto r =
              q.Fail(job.lease, options_.worker_id, outcome.status.ToString(), permanent, backoff,
                     tel.is_object() ? tel.value("HistoryExitReason", std::string()) : "",
                     &run_complete, telemetry::FallbackReasons(tel));
          if (r.ok()) where = *r;
          return r.status();
        },
        options_.lease());
    log::Warn(where == "dead" ? "scene_dead_lettered" : "scene_failed",
              {{"scene_id", id},
               {"attempt", job.lease.attempt},
               {"reason", outcome.status.ToString()},
               {"next", where},
               {"backoff_ms", backoff.count()}});
  }
  if (!s.ok()) log::Warn("scene_outcome_not_recorded", {{"scene_id", id}, {"error", s.ToString()}});
  // run_complete: a finished run waits (this scene's, or one a reclaim or cancel finished); each
  // is claimed by exactly one worker (or scenefarm repair).
  if (s.ok() && run_complete) AssembleFinishedRuns(q);
}

void Worker::AssembleFinishedRuns(queue::Queue& q) {
  // Writes each claimed run's metadata and summary (common/src/run_assembly.cpp).
  const telemetry::Policy policy = PolicyOf(options_);
  auto r = telemetry::AssembleFinishedRuns(q, redis_, options_.artifacts_dir, &policy);
  if (!r.ok())
    log::Warn("finished_runs_unread", {{"queue", q.name()}, {"error", r.status().ToString()}});
}

void Worker::ReleaseJob(Job& job, const std::string& reason) {
  queue::Queue* q = QueueFor(job);
  if (q == nullptr) return;
  Status s = RetryUnavailable([&] { return q->Release(job.lease, options_.worker_id, reason); },
                              options_.lease());
  log::Info("scene_released",
            {{"scene_id", job.lease.id}, {"reason", reason}, {"recorded", s.ok()}});
}

void Worker::Drain(const std::atomic<bool>&) {
  log::Info("worker_draining", {{"worker_id", options_.worker_id}, {"pipelined", jobs_.size()}});
  std::deque<std::shared_ptr<Job>> rest;
  {
    std::lock_guard<std::mutex> lock(mu_);
    rest.swap(jobs_);
  }
  for (auto& job : rest) {
    if (job->submitted) renderer_.Withdraw(*job);
    if (!job->lease_lost) ReleaseJob(*job, "worker draining");
  }
}

void Worker::NotePaused(const std::string& queue, bool paused) {
  if (paused == (paused_queues_.count(queue) > 0)) return;
  if (paused) {
    paused_queues_.insert(queue);
    log::Info("queue_paused", {{"queue", queue}});
  } else {
    paused_queues_.erase(queue);
    log::Info("queue_resumed", {{"queue", queue}});
  }
  (void)redis_.Command(
      {"HSET", queue::WorkerKey(options_.worker_id), "paused_queues",
       json(std::vector<std::string>(paused_queues_.begin(), paused_queues_.end())).dump()});
}

void Worker::SetBusy(bool busy, const std::string& scene) {
  // For `scenefarm status` only: a failure is logged and the loop goes on. Written only when it
  // changes (the ack's lease writes it in the same round trip).
  const std::string mark = busy ? scene : "";
  if (busy_mark_ && *busy_mark_ == mark) return;
  auto r = redis_.Command(
      {"HSET", queue::WorkerKey(options_.worker_id), "busy", busy ? "1" : "0", "scene", mark});
  if (!r.ok()) {
    log::Warn("worker_state_unrecorded", {{"error", r.status().ToString()}});
    busy_mark_.reset();
    return;
  }
  busy_mark_ = mark;
}

void Worker::HeartbeatLoop(const std::atomic<bool>& done, const std::atomic<bool>& stop) {
  redis::Options ro = RedisOptionsFor(options_);
  redis::Client client(ro);
  std::vector<queue::Queue> queues = MakeQueues(client, options_, clock_);
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  auto registered = client.Command(
      {"HSET", queue::WorkerKey(options_.worker_id), "host", host, "pid", std::to_string(getpid()),
       "queues", json(options_.queues).dump(), "started_at", std::to_string(clock_.NowMs())});
  if (!registered.ok())
    log::Warn("worker_state_unrecorded", {{"error", registered.status().ToString()}});
  std::optional<std::chrono::steady_clock::time_point> drain_deadline;
  auto readings = StartHostReadings(options_, clock_);  // GPU and disk, published each beat
  bool stop_woken = false;
  while (!done) {
    HeartbeatOnce(queues, readings->Latest());
    if (stop && !stop_woken) {
      // The loop may be blocked on the wake lists: its own list ends the wait now.
      const std::string key = keys::WorkerWake(options_.worker_id);
      // Tried once: if Redis does not answer, the loop's wait fails too, or ends by itself
      // within a heartbeat period.
      stop_woken = true;
      auto woke = client.Pipeline(
          {{"RPUSH", key, "stop"}, {"LTRIM", key, "0", "0"}, {"EXPIRE", key, "60"}});
      if (!woke.ok()) log::Debug("stop_wake_failed", {{"error", woke.status().ToString()}});
    }
    if (stop && !drain_deadline)
      drain_deadline = std::chrono::steady_clock::now() + options_.drain();
    if (drain_deadline && std::chrono::steady_clock::now() >= *drain_deadline) AbandonInHand();
    HeartbeatSleep([&] { return done || (stop && !stop_woken); },
                   std::min(options_.heartbeat(), std::chrono::milliseconds(stop ? 100 : 100000)));
  }
}

void Worker::HeartbeatSleep(const std::function<bool()>& until, std::chrono::milliseconds d) {
  if (stop_read_fd_ < 0) return SleepUntil(until, d);
  const auto end = std::chrono::steady_clock::now() + d;
  while (!until()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left <= 0ms) return;
    pollfd p{stop_read_fd_, POLLIN, 0};
    const int n = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30)));
    if (n > 0) {
      char buf[64];
      while (read(stop_read_fd_, buf, sizeof(buf)) > 0) {
      }
    } else if (n < 0 && errno != EINTR) {
      return SleepUntil(until, std::chrono::duration_cast<std::chrono::milliseconds>(
                                   end - std::chrono::steady_clock::now()));
    }
  }
}

Status Worker::ConfirmLease(Job& job) {
  queue::Queue* q = QueueFor(job);
  if (q == nullptr) return Status::Aborted("queue " + job.lease.queue + " is not this worker's");
  auto r = q->Heartbeat(options_.worker_id, options_.lease(), {job.lease}, nullptr);
  if (!r.ok()) return r.status();
  if (r->empty() || (*r)[0] == queue::HeartbeatResult::kLost) {
    job.lease_lost = true;
    job.abandon = true;
    return Status::Aborted("scene " + job.lease.id + " attempt " +
                           std::to_string(job.lease.attempt) + " is no longer this worker's");
  }
  if ((*r)[0] == queue::HeartbeatResult::kCancelRequested) job.cancel_requested = true;
  return Status::Ok();
}

void Worker::AbandonInHand() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!jobs_.empty() && !jobs_.front()->abandon.exchange(true)) {
    log::Warn("drain_timeout",
              {{"scene_id", jobs_.front()->lease.id}, {"drain_seconds", options_.drain_seconds}});
  }
}

void Worker::HeartbeatOnce(std::vector<queue::Queue>& queues, const std::string& readings) {
  std::vector<std::shared_ptr<Job>> held;
  {
    std::lock_guard<std::mutex> lock(mu_);
    held.assign(jobs_.begin(), jobs_.end());
    held.insert(held.end(), admitting_.begin(), admitting_.end());
  }
  for (auto& q : queues) {
    std::vector<queue::LeasedScene> leases;
    std::vector<std::shared_ptr<Job>> jobs;
    for (auto& j : held) {
      if (j->lease.queue == q.name()) {
        leases.push_back(j->lease);
        jobs.push_back(j);
      }
    }
    // The first queue's beat also writes the worker's hash (heartbeat_at, readings, its TTL):
    // one command per queue per beat.
    queue::WorkerBeat beat{static_cast<int64_t>(options_.lease_seconds * 3) + 1, clock_.NowMs(),
                           readings};
    auto r = q.Heartbeat(options_.worker_id, options_.lease(), leases,
                         &q == &queues.front() ? &beat : nullptr);
    if (!r.ok()) {
      log::Warn("heartbeat_failed", {{"queue", q.name()}, {"error", r.status().ToString()}});
      continue;
    }
    for (size_t i = 0; i < jobs.size() && i < r->size(); ++i) {
      if ((*r)[i] == queue::HeartbeatResult::kLost) {
        jobs[i]->lease_lost = true;
        jobs[i]->abandon = true;
      } else if ((*r)[i] == queue::HeartbeatResult::kCancelRequested) {
        jobs[i]->cancel_requested = true;
      }
    }
  }
}

}  // namespace scenefarm::worker
