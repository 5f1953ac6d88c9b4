// Every Redis key name scenefarm uses, built in one place (the Lua scripts build the same names
// from the prefix they are given). Layout and meaning: docs/queue-protocol.md.
#pragma once

#include <string>

namespace scenefarm::keys {

// Global keys.
inline constexpr char kQueues[] = "sf:queues";    // set of queue names
inline constexpr char kWorkers[] = "sf:workers";  // zset worker id -> last heartbeat (ms)
inline constexpr char kFarmStats[] = "sf:farm:stats";
// String: where enqueue puts a new scene's document. "hash": in its hash's `doc` field, the
// format of versions before the doc key, which they can read (mixed versions, a rollback);
// absent or "key": in its own key (QueueKeys::Doc). `scenefarm doc-storage` sets it.
inline constexpr char kDocStorage[] = "sf:doc_storage";
inline std::string Worker(const std::string& worker_id) {
  return "sf:worker:" + worker_id;
}
// List a worker blocks on besides its queues' wake lists: a token here ends its idle wait at
// once (pushed by its own heartbeat thread when it is told to stop). Expires after a minute.
inline std::string WorkerWake(const std::string& worker_id) {
  return "sf:worker:" + worker_id + ":wake";
}

// "sf:{QUEUE}:", the prefix of every key of a queue.
inline std::string Prefix(const std::string& queue) {
  return "sf:{" + queue + "}:";
}

// The keys of one queue.
class QueueKeys {
 public:
  explicit QueueKeys(const std::string& queue) : prefix_(Prefix(queue)) {}
  const std::string& prefix() const { return prefix_; }

  std::string Scene(const std::string& id) const { return prefix_ + "scene:" + id; }
  // String: the scene's document (JSON), beside its hash and with the same TTL. A scene enqueued
  // before this key existed has none: its hash's `doc` field holds the document instead.
  std::string Doc(const std::string& id) const { return prefix_ + "doc:" + id; }
  // The zset of scenes in a state: "pending", "delayed", "leased" or "dead".
  std::string State(const std::string& state) const { return prefix_ + state; }
  std::string Pending() const { return prefix_ + "pending"; }
  std::string PendingSince() const { return prefix_ + "pending_since"; }
  std::string Delayed() const { return prefix_ + "delayed"; }
  std::string Leased() const { return prefix_ + "leased"; }
  std::string Dead() const { return prefix_ + "dead"; }
  std::string WorkerLeases(const std::string& worker) const { return prefix_ + "wl:" + worker; }
  std::string Seq() const { return prefix_ + "seq"; }
  std::string Stats() const { return prefix_ + "stats"; }
  std::string Histogram(const std::string& name) const { return prefix_ + "h:" + name; }
  std::string Events() const { return prefix_ + "events"; }
  std::string Run(const std::string& run) const { return prefix_ + "run:" + run; }
  std::string Runs() const { return prefix_ + "runs"; }                   // runs not finished
  std::string RunsFinished() const { return prefix_ + "runs_finished"; }  // to assemble
  // Hash {by, at}; present while the queue is paused (pause.lua): nothing is leased from it.
  std::string Paused() const { return prefix_ + "paused"; }
  std::string RunsClaimed() const { return prefix_ + "runs_claimed"; }  // being assembled
  // List of at most one token, pushed by whatever makes a scene leasable: idle workers block
  // on it (BLPOP) instead of polling. docs/queue-protocol.md, "Waking idle workers".
  std::string Wake() const { return prefix_ + "wake"; }
  // String (the worker whose turn it is) with a TTL: while it lives, the workers' periodic
  // reclaim is done for the farm (Queue::ReclaimIfDue).
  std::string ReclaimGate() const { return prefix_ + "reclaim_gate"; }

 private:
  std::string prefix_;
};

}  // namespace scenefarm::keys
