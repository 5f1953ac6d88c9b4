// The scene queue in Redis. Every state change is one Lua script (common/queue/lua/), so a scene
// is in exactly one place (pending, delayed, leased, dead, or finished) whatever process dies
// when. Key layout and scripts: docs/queue-protocol.md (our persistent format).
//
// Fencing: each lease gets a new attempt number; Ack/Fail/Release/Heartbeat by a worker whose
// attempt is not the scene's current one change nothing and return kAborted ("stop quietly").
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scenefarm/clock.h"
#include "scenefarm/keys.h"
#include "scenefarm/redis.h"
#include "scenefarm/scene.h"
#include "scenefarm/status.h"

namespace scenefarm::queue {

struct QueueOptions {
  std::string name = "scenes";   // SCENEFARM_QUEUE (one queue per Queue object)
  int default_retry_budget = 1;  // SceneRetryBudget, for scenes that set none
  int max_reclaims = 10;         // expired leases before a scene is dead-lettered
  int max_outage_releases = 10;  // releases for a ComfyUI outage before it is dead-lettered
  // How long a finished scene's record (succeeded or cancelled) and a finished run's record
  // are kept, and how long a worker without a heartbeat stays in sf:workers.
  int64_t retention_seconds = 7 * 86400;
  size_t enqueue_batch = 500;               // scenes per enqueue script call (enqueue_many.lua)
  size_t enqueue_calls_per_round_trip = 8;  // script calls pipelined in one round trip
  // Scenes per script call in long operations (purge, reclaim, expiring gone workers' leases):
  // each call holds Redis, heartbeats included, only that long.
  size_t script_batch = 200;
  // How long a claim on a finished run lasts (claim_run.lua): a claimant that dies or hangs
  // while assembling loses the run to the next worker or `scenefarm repair` after this long.
  int64_t run_claim_seconds = 600;
};

// A validated scene as enqueue sends it: its document already serialized (SceneToJson).
struct EnqueueDoc {
  std::string id;
  std::string run;
  int priority = 0;
  std::optional<int> retry_budget;
  std::string doc;
};
EnqueueDoc ToEnqueueDoc(Scene scene);

struct LeasedScene {
  std::string queue;
  std::string id;
  int64_t attempt = 0;  // the fencing token
  std::string run;
  int retry_budget = 0;
  int failures = 0;            // failures so far, before this attempt
  int64_t failed_attempt = 0;  // the last attempt that failed; later ones were cut short
  int64_t enqueued_at_ms = 0;
  std::string doc;  // the scene document as enqueued (JSON)
};

enum class HeartbeatResult { kRenewed, kLost, kCancelRequested };

// What a worker's heartbeat also writes to its hash (sf:worker:<id>), in the same script call.
struct WorkerBeat {
  int64_t ttl_seconds = 0;  // the hash expires this long after the beat (0: left alone)
  int64_t heartbeat_at_ms = 0;
  std::string readings;  // host readings JSON ("" : none yet)
};

// AckAndLease's answer.
struct AckLeaseResult {
  bool run_complete = false;        // as Ack's *run_complete
  std::optional<LeasedScene> next;  // the scene leased in the same call, if any
  // The queues the lease looked at, in order, and whether each answered "paused".
  std::vector<std::pair<std::string, bool>> looked_at;
  // Nothing leased: milliseconds until the first delayed scene of those queues is due, -1 none.
  int64_t next_due_ms = -1;
};

struct Depth {
  int64_t pending = 0, delayed = 0, leased = 0, dead = 0;
};

struct QueueStatus {
  std::string queue;
  Depth depth;
  std::map<std::string, int64_t> outcomes;  // succeeded, failed, retried, dead_lettered, cancelled
  int64_t workers_live = 0;
  int64_t workers_busy = 0;
  double oldest_pending_age_seconds = 0;
  std::vector<std::string> runs_in_progress;
  bool paused = false;            // pause.lua: nothing is leased while paused
  std::string paused_by;          // who paused it ("" when not paused)
  int64_t paused_at_ms = 0;       // when (Redis time), 0 when not paused
  nlohmann::json ToJson() const;  // the shape of `scenefarm status --json` (README)
};

struct SceneInfo {
  std::string id, run, state, reason, worker;
  int64_t attempts = 0, failures = 0;
  nlohmann::json doc;
  nlohmann::json result;                // what the worker recorded on success
  std::vector<nlohmann::json> history;  // events of this scene from the event stream
  nlohmann::json ToJson() const;        // the shape of `scenefarm jobs show --json` (README)
};

// Exponential backoff with full jitter: uniform in [0, min(max, base * 2^(failures-1))].
std::chrono::milliseconds RetryBackoff(int failures, std::chrono::milliseconds base,
                                       std::chrono::milliseconds max, std::mt19937_64& rng);

// Key names live in scenefarm/keys.h; these are its names under this namespace.
inline std::string KeyPrefix(const std::string& queue) {
  return keys::Prefix(queue);
}
inline constexpr const char* kWorkersKey = keys::kWorkers;
inline std::string WorkerKey(const std::string& worker_id) {
  return keys::Worker(worker_id);
}
inline constexpr const char* kQueuesKey = keys::kQueues;

class Queue {
 public:
  Queue(redis::Client& redis, QueueOptions options, const Clock& clock);

  const std::string& name() const { return options_.name; }

  // enqueue_batch scenes per script call, enqueue_calls_per_round_trip calls pipelined per round
  // trip; created[i] is false where a scene with that id already exists (or came earlier in
  // the list). Each call enqueues all of its scenes or none; on an error the calls before it
  // stay enqueued.
  Result<std::vector<bool>> Enqueue(const std::vector<Scene>& scenes);
  // actor: who asked (the enqueued events' `by`); "" records none.
  Result<std::vector<bool>> EnqueueDocs(const std::vector<EnqueueDoc>& docs,
                                        const std::string& actor = "");
  // nullopt when nothing is pending (or due), or when the queue is paused (*paused set).
  // *next_due_ms (nothing leased): milliseconds until the first delayed scene is due, -1 none.
  Result<std::optional<LeasedScene>> Lease(const std::string& worker,
                                           std::chrono::milliseconds lease, bool* paused = nullptr,
                                           int64_t* next_due_ms = nullptr);
  // Renews the leases in one round trip, and marks the worker alive (with `beat`, its hash too).
  Result<std::vector<HeartbeatResult>> Heartbeat(const std::string& worker,
                                                 std::chrono::milliseconds lease,
                                                 const std::vector<LeasedScene>& held,
                                                 const WorkerBeat* beat = nullptr);
  // result["telemetry"] (seed 001's Telemetry object), when present, feeds the stats and
  // histograms. *run_complete: a finished run waits to be assembled (FinishedRuns): this
  // scene's, when this ack finished its last open scene, or one a reclaim or cancel finished.
  // The same worker acking the same attempt again (after a lost reply) gets the same answer.
  Status Ack(const LeasedScene& s, const std::string& worker, const nlohmann::json& result,
             bool* run_complete = nullptr);
  // One round trip per scene (ack_lease.lua): acks s (a scene of this queue) exactly as Ack,
  // then leases the first pending scene of `queues` (names, the worker's order; empty: none) as
  // Lease would, and sets the worker's hash busy/scene to next_scene, or to the scene leased
  // when next_scene is "" (busy 0 when there is none). kAborted when the ack is fenced (nothing
  // changed, nothing leased). A retry after a lost reply gets the first call's answer and the
  // scene it leased (while still this worker's), never a second one.
  Result<AckLeaseResult> AckAndLease(const LeasedScene& s, const std::string& worker,
                                     const nlohmann::json& result, std::chrono::milliseconds lease,
                                     const std::string& next_scene,
                                     const std::vector<std::string>& queues);
  // Spends one of the retry budget: "delayed" (retried after backoff) or "dead". permanent:
  // dead-letter at once (a 400 from /prompt, an invalid scene document). exit_reason: the
  // attempt's HistoryExitReason, counted; "" when it never reached ComfyUI's queue.
  Result<std::string> Fail(const LeasedScene& s, const std::string& worker,
                           const std::string& reason, bool permanent,
                           std::chrono::milliseconds backoff, const std::string& exit_reason = "",
                           bool* run_complete = nullptr,
                           const std::vector<std::string>& fallback_reasons = {});
  // The worker stopped the scene because its cancel was requested.
  Status AckCancelled(const LeasedScene& s, const std::string& worker,
                      bool* run_complete = nullptr);
  // Back to the front of pending without spending the retry budget.
  Status Release(const LeasedScene& s, const std::string& worker, const std::string& reason);
  // A release because the worker's ComfyUI was down or hung: counted in the scene's
  // outage_releases; the max_outage_releases-th dead-letters it ("comfyui outage: ..."). Returns
  // "pending" or "dead"; *run_complete as Fail's.
  Result<std::string> ReleaseInOutage(const LeasedScene& s, const std::string& worker,
                                      const std::string& reason, bool* run_complete = nullptr);
  // Returns how many expired leases were moved (at most `limit`, script_batch per call).
  Result<int64_t> Reclaim(int limit = 100);
  // The workers' periodic reclaim: Reclaim, when no worker has taken the turn in the last 9/10
  // of `period`, 4.5 s at most (SET reclaim_gate worker NX PX): a farm of N workers, each
  // calling it every period, reclaims about once a period instead of N times (issue #14 P8). A
  // reclaim that fails or moves `limit` scenes hands the turn on at once. nullopt: another
  // worker's turn still holds.
  Result<std::optional<int64_t>> ReclaimIfDue(const std::string& worker,
                                              std::chrono::milliseconds period, int limit = 100);
  // The scenes this worker id still holds (after a restart), each with a new attempt.
  Result<std::vector<LeasedScene>> Resume(const std::string& worker,
                                          std::chrono::milliseconds lease);
  // Returns the state the scene was in; kNotFound when unknown. actor: who asked (the event's
  // `by`, e.g. "cli:alice", "api:bob"); "" records none.
  Result<std::string> Cancel(const std::string& id, const std::string& actor = "");
  // Dead -> pending; kFailedPrecondition when the scene is not dead, kNotFound when unknown.
  Status Retry(const std::string& id, const std::string& actor = "");
  // Pause: nothing is leased from the queue until Resume (heartbeats, acks, fails, reclaims
  // go on). Each returns true when the state changed (an event queue_paused / queue_resumed
  // with `by` = actor), false when the queue already was so.
  Result<bool> Pause(const std::string& actor);
  Result<bool> Resume(const std::string& actor);
  Result<bool> IsPaused();
  // Succeeded -> pending, to be rendered again on purpose (rerun.lua): a new attempt, no
  // earlier attempt adopted, the event "rerun" with `reason` in its history.
  // kFailedPrecondition when the scene is not succeeded, kNotFound when unknown or expired.
  Status Rerun(const std::string& id, const std::string& reason);

  Result<SceneInfo> Show(const std::string& id);
  // Scenes in a state (pending in lease order, delayed by due time, leased by deadline, dead by
  // time; "done": succeeded or cancelled, newest first from the event stream), optionally of
  // one run; at most `limit`. History is not filled.
  Result<std::vector<SceneInfo>> List(const std::string& state, const std::string& run,
                                      size_t limit);
  // Dead-lettered at or before cutoff_ms (read only), and their deletion (script_batch per
  // script call, so Redis keeps answering heartbeats between calls).
  Result<std::vector<std::string>> DeadBefore(int64_t cutoff_ms, size_t limit);
  Result<std::vector<std::string>> PurgeDead(int64_t cutoff_ms, size_t limit,
                                             const std::string& actor = "");
  // Leased scenes whose deadline has passed by the queue's time (Redis TIME).
  Result<std::vector<std::string>> ExpiredLeases();
  // Leased scenes whose worker has no heartbeat within live_window: (id, worker).
  Result<std::vector<std::pair<std::string, std::string>>> LeasesOfGoneWorkers(
      std::chrono::milliseconds live_window);
  // Expires those leases now (still held by that worker), script_batch per script call; the
  // next Reclaim requeues them.
  Result<int64_t> ExpireLeases(const std::vector<std::pair<std::string, std::string>>& leases);
  // The time the scripts run at: the clock's queue time when it has one (tests), otherwise the
  // Redis server's TIME, never this host's clock (it may run ahead of the workers').
  Result<int64_t> TimeMs();

  // Runs that finished (every scene succeeded, dead or cancelled) and are not yet assembled,
  // whichever transition finished them (ack, fail, reclaim, cancel), and runs whose claim
  // expired (their claimant died or hung before it finished).
  Result<std::vector<std::string>> FinishedRuns();
  // Takes a finished run (or one whose claim expired) for assembly, for run_claim_seconds: the
  // claim's token (> 0) for one caller at a time; 0 when another worker or `scenefarm repair`
  // holds it or it is assembled.
  Result<int64_t> ClaimFinishedRun(const std::string& run);
  // Ends the claim once the run's files are written: true, or false when the claim had expired
  // and another claimant took it over (that one assembles it too).
  Result<bool> RunAssembled(const std::string& run, int64_t claim);
  Result<QueueStatus> GetStatus(std::chrono::milliseconds live_window);

 private:
  std::vector<std::string> Args(std::initializer_list<std::string> rest) const;
  Result<LeasedScene> ParseLeased(const redis::Value& v, size_t from = 0) const;
  size_t Batch() const { return options_.script_batch > 0 ? options_.script_batch : 1; }
  Result<redis::Value> Fenced(const redis::Script& script, std::initializer_list<std::string> rest);

  redis::Client& redis_;
  const QueueOptions options_;
  const Clock& clock_;
  const std::string prefix_;
  const keys::QueueKeys keys_;
};

}  // namespace scenefarm::queue
