#include "scenefarm/queue.h"

#include <algorithm>
#include <set>

#include "queue_scripts.h"

namespace scenefarm::queue {
namespace {

using json = nlohmann::json;

const redis::Script kEnqueueMany{"enqueue_many", scripts::k_enqueue_many};
const redis::Script kLease{"lease", scripts::k_lease};
const redis::Script kHeartbeat{"heartbeat", scripts::k_heartbeat};
const redis::Script kAck{"ack", scripts::k_ack};
const redis::Script kAckLease{"ack_lease", scripts::k_ack_lease};
const redis::Script kFail{"fail", scripts::k_fail};
const redis::Script kRelease{"release", scripts::k_release};
const redis::Script kReclaim{"reclaim", scripts::k_reclaim};
const redis::Script kCancel{"cancel", scripts::k_cancel};
const redis::Script kRetry{"retry", scripts::k_retry};
const redis::Script kPurge{"purge", scripts::k_purge};
const redis::Script kExpireGone{"expire_gone", scripts::k_expire_gone};
const redis::Script kResume{"resume", scripts::k_resume};
const redis::Script kRerun{"rerun", scripts::k_rerun};
const redis::Script kPause{"pause", scripts::k_pause};
const redis::Script kClaimRun{"claim_run", scripts::k_claim_run};
const redis::Script kRunAssembled{"run_assembled", scripts::k_run_assembled};

Status ScriptError(const char* what, const redis::Value& v) {
  return Status::Internal(std::string(what) + ": " + v.str);
}

}  // namespace

std::chrono::milliseconds RetryBackoff(int failures, std::chrono::milliseconds base,
                                       std::chrono::milliseconds max, std::mt19937_64& rng) {
  const int shift = std::clamp(failures - 1, 0, 30);
  const int64_t ceiling = std::min<int64_t>(max.count(), base.count() << shift);
  std::uniform_int_distribution<int64_t> dist(0, std::max<int64_t>(0, ceiling));
  return std::chrono::milliseconds(dist(rng));
}

Queue::Queue(redis::Client& redis, QueueOptions options, const Clock& clock)
    : redis_(redis),
      options_(std::move(options)),
      clock_(clock),
      prefix_(keys::Prefix(options_.name)),
      keys_(options_.name) {}

std::vector<std::string> Queue::Args(std::initializer_list<std::string> rest) const {
  std::vector<std::string> a = {prefix_, std::to_string(clock_.QueueTimeMs())};
  a.insert(a.end(), rest.begin(), rest.end());
  return a;
}

EnqueueDoc ToEnqueueDoc(Scene scene) {
  EnqueueDoc d{scene.id, scene.run, scene.priority, scene.retry_budget, {}};
  d.doc = SceneToJson(std::move(scene)).dump();
  return d;
}

Result<std::vector<bool>> Queue::Enqueue(const std::vector<Scene>& scenes) {
  std::vector<EnqueueDoc> docs;
  docs.reserve(scenes.size());
  for (const Scene& s : scenes)
    docs.push_back(ToEnqueueDoc(s));
  return EnqueueDocs(docs);
}

Result<std::vector<bool>> Queue::EnqueueDocs(const std::vector<EnqueueDoc>& docs,
                                             const std::string& actor) {
  std::vector<bool> created;
  created.reserve(docs.size());
  const size_t per_call = std::max<size_t>(1, options_.enqueue_batch);
  const size_t per_trip = per_call * std::max<size_t>(1, options_.enqueue_calls_per_round_trip);
  const std::string budget = std::to_string(options_.default_retry_budget);
  for (size_t trip = 0; trip < docs.size(); trip += per_trip) {
    std::vector<std::vector<std::string>> calls;
    for (size_t start = trip; start < std::min(docs.size(), trip + per_trip); start += per_call) {
      const size_t end = std::min(docs.size(), start + per_call);
      std::vector<std::string> args = Args({});
      args.reserve(2 + 5 * (end - start));
      for (size_t i = start; i < end; ++i) {
        const EnqueueDoc& d = docs[i];
        args.push_back(d.id);
        args.push_back(d.run);
        args.push_back(std::to_string(d.priority));
        args.push_back(d.retry_budget ? std::to_string(*d.retry_budget) : budget);
        args.push_back(d.doc);
      }
      if (!actor.empty()) args.push_back(actor);
      calls.push_back(std::move(args));
    }
    auto replies = redis_.EvalPipeline(kEnqueueMany, calls);
    if (!replies.ok()) return replies.status();
    for (const auto& r : *replies) {
      if (r.is_error()) return ScriptError("enqueue", r);
      for (const auto& e : r.elements)
        created.push_back(e.integer == 1);
    }
  }
  return created;
}

// Lease's fields from v.elements[from...].
Result<LeasedScene> Queue::ParseLeased(const redis::Value& v, size_t from) const {
  if (v.type != redis::Value::Type::kArray || v.elements.size() < from + 7) {
    return Status::Internal("lease: unexpected reply");
  }
  const auto& e = v.elements;
  LeasedScene s;
  s.queue = options_.name;
  s.id = e[from].AsString();
  s.attempt = e[from + 1].AsInt();
  s.doc = e[from + 2].AsString();
  s.run = e[from + 3].AsString();
  s.retry_budget = static_cast<int>(e[from + 4].AsInt());
  s.failures = static_cast<int>(e[from + 5].AsInt());
  s.enqueued_at_ms = e[from + 6].AsInt();
  if (e.size() > from + 7) s.failed_attempt = e[from + 7].AsInt();
  return s;
}

Result<std::optional<LeasedScene>> Queue::Lease(const std::string& worker,
                                                std::chrono::milliseconds lease, bool* paused,
                                                int64_t* next_due_ms) {
  auto r = redis_.Eval(kLease, Args({worker, std::to_string(lease.count())}));
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError("lease", *r);
  const bool is_paused = r->type != redis::Value::Type::kArray && r->AsString() == "paused";
  if (paused) *paused = is_paused;
  if (next_due_ms) *next_due_ms = r->type == redis::Value::Type::kInteger ? r->integer : -1;
  // Nothing pending: the milliseconds until the first delayed scene is due (nil from an older
  // script version).
  if (r->type == redis::Value::Type::kInteger || r->is_nil() || is_paused)
    return std::optional<LeasedScene>();
  auto s = ParseLeased(*r);
  if (!s.ok()) return s.status();
  return std::optional<LeasedScene>(std::move(s).value());
}

Result<std::vector<HeartbeatResult>> Queue::Heartbeat(const std::string& worker,
                                                      std::chrono::milliseconds lease,
                                                      const std::vector<LeasedScene>& held,
                                                      const WorkerBeat* beat) {
  std::vector<std::string> args =
      Args({worker, std::to_string(lease.count()), std::to_string(beat ? beat->ttl_seconds : 0),
            std::to_string(beat ? beat->heartbeat_at_ms : 0), beat ? beat->readings : ""});
  for (const auto& s : held) {
    args.push_back(s.id);
    args.push_back(std::to_string(s.attempt));
  }
  auto r = redis_.Eval(kHeartbeat, args);
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError("heartbeat", *r);
  std::vector<HeartbeatResult> out;
  for (const auto& e : r->elements) {
    out.push_back(e.integer == 1   ? HeartbeatResult::kRenewed
                  : e.integer == 2 ? HeartbeatResult::kCancelRequested
                                   : HeartbeatResult::kLost);
  }
  return out;
}

Result<redis::Value> Queue::Fenced(const redis::Script& script,
                                   std::initializer_list<std::string> rest) {
  auto r = redis_.Eval(script, Args(rest));
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError(script.name, *r);
  if (r->type == redis::Value::Type::kInteger && r->integer == 0) {
    return Status::Aborted(std::string(script.name) + ": the lease is no longer this worker's");
  }
  return r;
}

Status Queue::Ack(const LeasedScene& s, const std::string& worker, const json& result,
                  bool* run_complete) {
  auto r = Fenced(kAck, {worker, s.id, std::to_string(s.attempt), result.dump(),
                         std::to_string(options_.retention_seconds)});
  if (r.ok() && run_complete) *run_complete = r->integer == 2;
  return r.status();
}

Result<AckLeaseResult> Queue::AckAndLease(const LeasedScene& s, const std::string& worker,
                                          const json& result, std::chrono::milliseconds lease,
                                          const std::string& next_scene,
                                          const std::vector<std::string>& queues) {
  std::vector<std::string> args =
      Args({worker, s.id, std::to_string(s.attempt), result.dump(),
            std::to_string(options_.retention_seconds), std::to_string(lease.count()), next_scene});
  args.insert(args.end(), queues.begin(), queues.end());
  auto r = redis_.Eval(kAckLease, args);
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError(kAckLease.name, *r);
  const auto& e = r->elements;
  if (r->type != redis::Value::Type::kArray || e.size() < 3)
    return Status::Internal("ack_lease: unexpected reply");
  if (e[0].AsInt() == 0) {
    return Status::Aborted(std::string(kAckLease.name) + ": the lease is no longer this worker's");
  }
  AckLeaseResult out;
  out.run_complete = e[0].AsInt() == 2;
  const std::string paused = e[1].AsString();
  for (size_t i = 0; i < paused.size() && i < queues.size(); ++i)
    out.looked_at.emplace_back(queues[i], paused[i] == '1');
  out.next_due_ms = e[2].AsInt(-1);
  if (e.size() > 3) {
    const int64_t from = e[3].AsInt();
    if (from < 1 || static_cast<size_t>(from) > queues.size())
      return Status::Internal("ack_lease: unexpected queue index");
    auto leased = ParseLeased(*r, 4);
    if (!leased.ok()) return leased.status();
    leased->queue = queues[from - 1];
    out.next = std::move(leased).value();
  }
  return out;
}

namespace {
// "dead:run_complete" -> "dead", run_complete = true.
std::string SplitRunComplete(std::string where, bool* run_complete) {
  const auto colon = where.find(':');
  if (run_complete) *run_complete = colon != std::string::npos;
  return colon == std::string::npos ? where : where.substr(0, colon);
}
}  // namespace

Result<std::string> Queue::Fail(const LeasedScene& s, const std::string& worker,
                                const std::string& reason, bool permanent,
                                std::chrono::milliseconds backoff, const std::string& exit_reason,
                                bool* run_complete,
                                const std::vector<std::string>& fallback_reasons) {
  std::string reasons;
  for (const auto& r : fallback_reasons)
    reasons += (reasons.empty() ? "" : ",") + r;
  auto r = Fenced(kFail, {worker, s.id, std::to_string(s.attempt), reason, permanent ? "1" : "0",
                          std::to_string(backoff.count()), "failed", exit_reason, reasons,
                          std::to_string(options_.retention_seconds)});
  if (!r.ok()) return r.status();
  return SplitRunComplete(r->AsString(), run_complete);
}

Status Queue::AckCancelled(const LeasedScene& s, const std::string& worker, bool* run_complete) {
  auto r = Fenced(kFail, {worker, s.id, std::to_string(s.attempt), "cancelled by request", "0", "0",
                          "cancelled", "", "", std::to_string(options_.retention_seconds)});
  if (r.ok()) SplitRunComplete(r->AsString(), run_complete);
  return r.status();
}

Status Queue::Release(const LeasedScene& s, const std::string& worker, const std::string& reason) {
  return Fenced(kRelease, {worker, s.id, std::to_string(s.attempt), reason}).status();
}

Result<std::string> Queue::ReleaseInOutage(const LeasedScene& s, const std::string& worker,
                                           const std::string& reason, bool* run_complete) {
  auto r = Fenced(kRelease, {worker, s.id, std::to_string(s.attempt), reason, "1",
                             std::to_string(options_.max_outage_releases),
                             std::to_string(options_.retention_seconds)});
  if (!r.ok()) return r.status();
  if (run_complete) *run_complete = r->integer == 3;
  return std::string(r->integer >= 2 ? "dead" : "pending");
}

Result<int64_t> Queue::Reclaim(int limit) {
  int64_t moved = 0;
  while (moved < limit) {
    const int64_t batch = std::min<int64_t>(limit - moved, static_cast<int64_t>(Batch()));
    auto r =
        redis_.Eval(kReclaim, Args({std::to_string(batch), std::to_string(options_.max_reclaims),
                                    std::to_string(options_.retention_seconds)}));
    if (!r.ok()) return r.status();
    if (r->is_error()) return ScriptError("reclaim", *r);
    moved += r->integer;
    if (r->integer < batch) break;  // no more expired leases
  }
  return moved;
}

Result<std::optional<int64_t>> Queue::ReclaimIfDue(const std::string& worker,
                                                   std::chrono::milliseconds period, int limit) {
  // 9/10: a worker calling every period takes its own next turn even when Redis's clock and its
  // own drift apart by a little. At most 4.5 s (9/10 of the default period), so that a worker
  // with a long heartbeat period cannot hold off the farm's reclaim for longer.
  const int64_t hold = std::clamp<int64_t>(period.count() * 9 / 10, 1, 4500);
  const std::string gate = keys_.ReclaimGate();
  auto r = redis_.Command({"SET", gate, worker, "NX", "PX", std::to_string(hold)});
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Internal("SET " + gate + ": " + r->str);
  if (r->is_nil()) return std::optional<int64_t>();
  auto moved = Reclaim(limit);
  // A failed reclaim, or a full one (more may wait), hands the turn on at once: the next
  // worker to try takes it instead of waiting out this one.
  if (!moved.ok() || *moved >= limit) (void)redis_.Command({"DEL", gate});
  if (!moved.ok()) return moved.status();
  return std::optional<int64_t>(*moved);
}

Result<std::vector<LeasedScene>> Queue::Resume(const std::string& worker,
                                               std::chrono::milliseconds lease) {
  auto r = redis_.Eval(kResume, Args({worker, std::to_string(lease.count())}));
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError("resume", *r);
  std::vector<LeasedScene> out;
  for (const auto& e : r->elements) {
    auto s = ParseLeased(e);
    if (!s.ok()) return s.status();
    out.push_back(std::move(s).value());
  }
  return out;
}

Result<std::string> Queue::Cancel(const std::string& id, const std::string& actor) {
  auto r = redis_.Eval(kCancel, Args({id, std::to_string(options_.retention_seconds), actor}));
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError("cancel", *r);
  if (r->AsString().empty()) return Status::NotFound("no scene '" + id + "' in queue " + name());
  return r->AsString();
}

Status Queue::Retry(const std::string& id, const std::string& actor) {
  auto r = redis_.Eval(kRetry, Args({id, actor}));
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError("retry", *r);
  if (r->type == redis::Value::Type::kInteger && r->integer == 1) return Status::Ok();
  if (r->AsString().empty()) return Status::NotFound("no scene '" + id + "' in queue " + name());
  return Status::FailedPrecondition("scene '" + id + "' is " + r->AsString() + ", not dead");
}

Result<bool> Queue::Pause(const std::string& actor) {
  auto r = redis_.Eval(kPause, Args({"1", actor}));
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError("pause", *r);
  return r->integer == 1;
}

Result<bool> Queue::Resume(const std::string& actor) {
  auto r = redis_.Eval(kPause, Args({"0", actor}));
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError("resume", *r);
  return r->integer == 1;
}

Result<bool> Queue::IsPaused() {
  auto r = redis_.Command({"EXISTS", keys_.Paused()});
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Internal("EXISTS: " + r->str);
  return r->integer == 1;
}

Status Queue::Rerun(const std::string& id, const std::string& reason) {
  auto r = redis_.Eval(kRerun, Args({id, reason}));
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError("rerun", *r);
  if (r->type == redis::Value::Type::kInteger && r->integer == 1) return Status::Ok();
  if (r->AsString().empty()) return Status::NotFound("no scene '" + id + "' in queue " + name());
  return Status::FailedPrecondition("scene '" + id + "' is " + r->AsString() + ", not succeeded");
}

Result<int64_t> Queue::TimeMs() {
  if (clock_.QueueTimeMs() > 0) return clock_.QueueTimeMs();
  auto r = redis_.Command({"TIME"});
  if (!r.ok()) return r.status();
  if (r->elements.size() != 2) return Status::Internal("TIME: unexpected reply");
  return r->elements[0].AsInt() * 1000 + r->elements[1].AsInt() / 1000;
}

Result<std::vector<std::string>> Queue::ExpiredLeases() {
  auto now = TimeMs();
  if (!now.ok()) return now.status();
  auto r = redis_.Command({"ZRANGEBYSCORE", keys_.Leased(), "-inf", std::to_string(*now)});
  if (!r.ok()) return r.status();
  std::vector<std::string> ids;
  for (const auto& v : r->elements)
    ids.push_back(v.str);
  return ids;
}

Result<std::vector<std::string>> Queue::FinishedRuns() {
  auto now = TimeMs();
  if (!now.ok()) return now.status();
  auto r = redis_.Pipeline({{"SMEMBERS", keys_.RunsFinished()},
                            {"ZRANGEBYSCORE", keys_.RunsClaimed(), "-inf", std::to_string(*now)}});
  if (!r.ok()) return r.status();
  std::vector<std::string> runs;
  for (const auto& reply : *r) {
    if (reply.is_error()) return Status::Internal("finished runs: " + reply.str);
    for (const auto& v : reply.elements)
      runs.push_back(v.str);
  }
  std::sort(runs.begin(), runs.end());
  runs.erase(std::unique(runs.begin(), runs.end()), runs.end());
  return runs;
}

Result<int64_t> Queue::ClaimFinishedRun(const std::string& run) {
  auto r = redis_.Eval(kClaimRun, Args({run, std::to_string(options_.run_claim_seconds * 1000)}));
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError(kClaimRun.name, *r);
  return r->integer;
}

Result<bool> Queue::RunAssembled(const std::string& run, int64_t claim) {
  auto r = redis_.Eval(kRunAssembled, Args({run, std::to_string(claim)}));
  if (!r.ok()) return r.status();
  if (r->is_error()) return ScriptError(kRunAssembled.name, *r);
  return r->integer == 1;
}

Result<std::vector<std::string>> Queue::DeadBefore(int64_t cutoff_ms, size_t limit) {
  // Paged by score (each page starts at the last score seen, past the ids already read there),
  // so no single command walks a million entries.
  const size_t page = std::max<size_t>(Batch(), 1000);
  std::vector<std::string> ids;
  std::string min = "-inf";
  size_t skip = 0;
  while (ids.size() < limit) {
    const size_t n = std::min(page, limit - ids.size());
    auto r = redis_.Command({"ZRANGEBYSCORE", keys_.Dead(), min, std::to_string(cutoff_ms),
                             "WITHSCORES", "LIMIT", std::to_string(skip), std::to_string(n)});
    if (!r.ok()) return r.status();
    if (r->is_error()) return Status::Internal("ZRANGEBYSCORE: " + r->str);
    const auto& e = r->elements;
    for (size_t i = 0; i + 1 < e.size(); i += 2)
      ids.push_back(e[i].str);
    if (e.size() / 2 < n) break;
    const std::string last = e[e.size() - 1].str;
    size_t same = 0;  // entries of this page at its last score
    for (size_t i = e.size(); i >= 2 && e[i - 1].str == last; i -= 2)
      ++same;
    skip = last == min ? skip + same : same;
    min = last;
  }
  return ids;
}

Result<std::vector<std::string>> Queue::PurgeDead(int64_t cutoff_ms, size_t limit,
                                                  const std::string& actor) {
  std::vector<std::string> ids;
  while (ids.size() < limit) {
    const size_t batch = std::min(limit - ids.size(), Batch());
    auto r = redis_.Eval(kPurge, Args({std::to_string(cutoff_ms), std::to_string(batch), actor}));
    if (!r.ok()) return r.status();
    if (r->is_error()) return ScriptError("purge", *r);
    for (const auto& v : r->elements)
      ids.push_back(v.str);
    if (r->elements.size() < batch) break;  // none older than the cutoff is left
  }
  return ids;
}

Result<std::vector<std::pair<std::string, std::string>>> Queue::LeasesOfGoneWorkers(
    std::chrono::milliseconds live_window) {
  auto now = TimeMs();
  if (!now.ok()) return now.status();
  auto r = redis_.Pipeline(
      {{"ZRANGE", keys_.Leased(), "0", "-1"},
       {"ZRANGEBYSCORE", keys::kWorkers, std::to_string(*now - live_window.count()), "+inf"}});
  if (!r.ok()) return r.status();
  std::set<std::string> live;
  for (const auto& v : (*r)[1].elements)
    live.insert(v.str);
  std::vector<std::vector<std::string>> cmds;
  std::vector<std::string> ids;
  for (const auto& v : (*r)[0].elements) {
    ids.push_back(v.str);
    cmds.push_back({"HGET", keys_.Scene(v.str), "worker"});
  }
  std::vector<std::pair<std::string, std::string>> gone;
  if (cmds.empty()) return gone;
  auto w = redis_.Pipeline(cmds);
  if (!w.ok()) return w.status();
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string worker = (*w)[i].AsString();
    if (!live.count(worker)) gone.emplace_back(ids[i], worker);
  }
  return gone;
}

Result<int64_t> Queue::ExpireLeases(
    const std::vector<std::pair<std::string, std::string>>& leases) {
  int64_t expired = 0;
  for (size_t start = 0; start < leases.size(); start += Batch()) {
    const size_t end = std::min(leases.size(), start + Batch());
    std::vector<std::string> args = Args({});
    for (size_t i = start; i < end; ++i) {
      args.push_back(leases[i].first);
      args.push_back(leases[i].second);
    }
    auto r = redis_.Eval(kExpireGone, args);
    if (!r.ok()) return r.status();
    if (r->is_error()) return ScriptError("expire_gone", *r);
    expired += r->integer;
  }
  return expired;
}

}  // namespace scenefarm::queue
