// scenes: the counters and bucket hashes workers keep in Redis (docs/queue-protocol.md),
// published as Prometheus counters and cumulative histograms, per queue.
#include "collector.h"
#include "families.h"
#include "scenefarm/keys.h"
#include "scenefarm/metrics.h"
#include "scenefarm/queue.h"
#include "scenefarm/readings.h"
#include "scenefarm/telemetry.h"

namespace scenefarm::exporter {
namespace {

std::map<std::string, std::string> AsHash(const redis::Value& v) {
  std::map<std::string, std::string> h;
  for (size_t i = 0; i + 1 < v.elements.size(); i += 2)
    h[v.elements[i].AsString()] = v.elements[i + 1].AsString();
  return h;
}

double Num(const std::map<std::string, std::string>& h, const std::string& k) {
  auto it = h.find(k);
  if (it == h.end()) return 0;
  try {
    return std::stod(it->second);
  } catch (const std::exception&) {
    return 0;
  }
}

struct HistogramSpec {
  const char* key;  // h:<key>
  const char* name;
  const char* help;
  const std::vector<double>* bounds;
};

const std::vector<HistogramSpec>& Histograms() {
  static const std::vector<HistogramSpec> specs = {
      {"duration", names::kSceneDuration,
       "Render time of succeeded scenes (telemetry DurationSeconds).", &metrics::kDurationBuckets},
      {"end_to_end", names::kSceneEndToEnd, "Enqueue to acknowledgement of succeeded scenes.",
       &metrics::kDurationBuckets},
      {"queue_wait", names::kSceneQueueWait, "Time from available to leased, per lease.",
       &metrics::kWaitBuckets},
      {"done_marker_wait", names::kSceneDoneMarkerWait,
       "Wait for the producer's done marker, scenes whose marker came.", &metrics::kWaitBuckets},
      {"frames", names::kSceneFrames, "Frames collected per succeeded scene.",
       &metrics::kFrameBuckets}};
  return specs;
}

const std::vector<std::string> kOutcomes = {"succeeded", "failed",    "retried",  "dead_lettered",
                                            "cancelled", "reclaimed", "released", "rerun"};

class ScenesCollector : public Collector {
 public:
  ScenesCollector(std::shared_ptr<SharedRedis> redis, std::vector<std::string> queues)
      : Collector("scenes"), redis_(std::move(redis)), queues_(std::move(queues)) {}

  Result<Families> Scrape() const override {
    std::lock_guard<std::mutex> lock(redis_->mu);
    auto queues = QueuesToReport(redis_->client, queues_);
    if (!queues.ok()) return queues.status();
    std::vector<std::vector<std::string>> cmds;
    for (const auto& q : *queues) {
      const keys::QueueKeys k(q);
      cmds.push_back({"HGETALL", k.Stats()});
      for (const auto& h : Histograms())
        cmds.push_back({"HGETALL", k.Histogram(h.key)});
    }
    cmds.push_back({"HGET", readings::kFarmStatsKey, readings::kContractViolations});
    std::vector<redis::Value> replies;
    if (!cmds.empty()) {
      auto r = redis_->client.Pipeline(cmds);
      if (!r.ok()) return r.status();
      replies = std::move(r).value();
    }
    Family scenes = Counter(names::kScenesTotal,
                            "Scene outcomes: succeeded, failed (attempts), retried, dead_lettered, "
                            "cancelled, reclaimed, released, rerun.");
    Family enqueued = Counter(names::kScenesEnqueued, "Scenes enqueued.");
    Family runs = Counter(names::kRunsCompleted,
                          "Runs whose every scene reached succeeded, dead or cancelled.");
    Family completions = Counter(names::kSceneCompletions,
                                 "Succeeded scenes by how their frames were taken: done_marker or "
                                 "forced_copy.");
    Family exits = Counter(names::kSceneHistoryExits,
                           "Attempts by HistoryExitReason (success, maxWait, attemptLimit, "
                           "postExecution, unknown).");
    Family short_frames = Counter(names::kSceneFramesShort,
                                  "Succeeded scenes with fewer frames than their expected_frames.");
    Family frames_total = Counter(names::kSceneFramesCollected, "Frames collected.");
    Family fallbacks = Counter(names::kSceneFallbacks,
                               "Attempts with a telemetry fallback note, by bounded reason.");
    std::vector<Family> hists;
    for (const auto& h : Histograms())
      hists.push_back(Histogram(h.name, h.help));
    // Each family's size is known: one allocation each, not a vector doubling through 1,000s.
    const size_t nq = queues->size();
    scenes.Reserve(nq * kOutcomes.size());
    completions.Reserve(nq * 2);
    exits.Reserve(nq * telemetry::kExitReasons.size());
    fallbacks.Reserve(nq * telemetry::FallbackReasonNames().size());
    for (Family* f : {&enqueued, &runs, &short_frames, &frames_total})
      f->Reserve(nq);
    for (auto& h : hists)
      h.Reserve(nq);
    size_t i = 0;
    for (const auto& q : *queues) {
      const auto stats = AsHash(replies[i++]);
      for (const auto& o : kOutcomes)
        scenes.Add({{"queue", q}, {"outcome", o}}, Num(stats, o));
      enqueued.Add({{"queue", q}}, Num(stats, "enqueued"));
      runs.Add({{"queue", q}}, Num(stats, "runs_completed"));
      completions.Add({{"queue", q}, {"method", "done_marker"}},
                      Num(stats, "completion_done_marker"));
      completions.Add({{"queue", q}, {"method", "forced_copy"}},
                      Num(stats, "completion_forced_copy"));
      for (const auto& r : telemetry::kExitReasons)
        exits.Add({{"queue", q}, {"reason", r}}, Num(stats, "exit_" + r));
      short_frames.Add({{"queue", q}}, Num(stats, "frames_short"));
      frames_total.Add({{"queue", q}}, Num(stats, "frames"));
      for (const auto& r : telemetry::FallbackReasonNames())
        fallbacks.Add({{"queue", q}, {"reason", r}}, Num(stats, "fallback_" + r));
      for (size_t h = 0; h < Histograms().size(); ++h) {
        std::map<double, uint64_t> buckets;
        double sum = 0;
        uint64_t count = 0;
        ParseBucketHash(AsHash(replies[i++]), *Histograms()[h].bounds, &buckets, &sum, &count);
        hists[h].AddHistogram({{"queue", q}}, buckets, sum, count);
      }
    }
    Family violations = Counter(names::kTelemetryContractViolations,
                                "Telemetry-contract violations workers found in the runs they "
                                "assembled (scenefarm validate's checks).");
    violations.Add({}, replies[i].is_nil() ? 0.0 : static_cast<double>(replies[i].AsInt(0)));
    Families out;
    for (Family* f : {&violations, &scenes, &enqueued, &runs, &completions, &exits, &short_frames,
                      &frames_total, &fallbacks}) {
      if (!f->empty()) out.push_back(f->Take());
    }
    for (auto& h : hists) {
      if (!h.empty()) out.push_back(h.Take());
    }
    return out;
  }

 private:
  std::shared_ptr<SharedRedis> redis_;
  std::vector<std::string> queues_;
};

}  // namespace

std::unique_ptr<Collector> MakeScenesCollector(std::shared_ptr<SharedRedis> redis,
                                               std::vector<std::string> queues) {
  return std::make_unique<ScenesCollector>(std::move(redis), std::move(queues));
}

}  // namespace scenefarm::exporter
