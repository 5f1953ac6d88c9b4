// queue: depth per state, oldest pending age, runs in progress and paused, per queue, in one
// round trip.
#include "collector.h"
#include "families.h"
#include "scenefarm/keys.h"
#include "scenefarm/queue.h"

namespace scenefarm::exporter {

Result<std::vector<std::string>> QueuesToReport(redis::Client& client,
                                                const std::vector<std::string>& configured) {
  auto r = client.Command({"SMEMBERS", keys::kQueues});
  if (!r.ok()) return r.status();
  std::vector<std::string> out = configured;
  for (const auto& v : r->elements) {
    if (std::find(out.begin(), out.end(), v.str) == out.end()) out.push_back(v.str);
  }
  return out;
}

namespace {

class QueueCollector : public Collector {
 public:
  QueueCollector(std::shared_ptr<SharedRedis> redis, std::vector<std::string> queues)
      : Collector("queue"), redis_(std::move(redis)), queues_(std::move(queues)) {}

  Result<Families> Scrape() const override {
    std::lock_guard<std::mutex> lock(redis_->mu);
    auto queues = QueuesToReport(redis_->client, queues_);
    if (!queues.ok()) return queues.status();
    std::vector<std::vector<std::string>> cmds = {{"TIME"}};
    for (const auto& q : *queues) {
      const keys::QueueKeys k(q);
      for (const char* state : {"pending", "delayed", "leased", "dead"})
        cmds.push_back({"ZCARD", k.State(state)});
      cmds.push_back({"ZRANGE", k.PendingSince(), "0", "0", "WITHSCORES"});
      cmds.push_back({"SCARD", k.Runs()});
      cmds.push_back({"ZRANGE", k.Leased(), "0", "-1"});
      cmds.push_back({"EXISTS", k.Paused()});
    }
    auto r = redis_->client.Pipeline(cmds);
    if (!r.ok()) return r.status();
    const auto& v = *r;
    const double now_ms = v[0].elements.size() == 2 ? v[0].elements[0].AsInt() * 1000.0 +
                                                          v[0].elements[1].AsInt() / 1000.0
                                                    : 0;
    Family depth = Gauge(names::kQueueDepth, "Scenes in the queue by state.");
    Family oldest = Gauge(names::kQueueOldestPendingAge,
                          "Age of the oldest pending scene (0 when none is pending).");
    Family runs = Gauge(names::kQueueRunsInProgress, "Runs with scenes not yet finished.");
    Family leased_age = Gauge(names::kQueueOldestLeasedAge,
                              "How long the longest-held lease has been held (0 when none).");
    Family paused = Gauge(names::kQueuePaused, "1 while the queue is paused (nothing is leased).");
    // Second round trip: when each leased scene was leased (bounded by workers x depth).
    std::vector<std::vector<std::string>> since_cmds;
    {
      size_t k = 1;
      for (const auto& q : *queues) {
        k += 6;
        for (const auto& id : v[k++].elements)
          since_cmds.push_back({"HGET", keys::QueueKeys(q).Scene(id.str), "leased_at"});
        ++k;  // paused
      }
    }
    std::vector<redis::Value> since_replies;
    if (!since_cmds.empty()) {
      auto sr = redis_->client.Pipeline(since_cmds);
      if (!sr.ok()) return sr.status();
      since_replies = std::move(sr).value();
    }
    depth.Reserve(queues->size() * 4);
    for (Family* f : {&oldest, &runs, &leased_age, &paused})
      f->Reserve(queues->size());
    size_t si = 0;
    size_t i = 1;
    for (const auto& q : *queues) {
      for (const char* state : {"pending", "delayed", "leased", "dead"})
        depth.Add({{"queue", q}, {"state", state}}, static_cast<double>(v[i++].AsInt()));
      const auto& since = v[i++];
      double age = 0;
      if (since.elements.size() == 2 && now_ms > 0) {
        age = std::max(0.0, (now_ms - std::stod(since.elements[1].AsString())) / 1000.0);
      }
      oldest.Add({{"queue", q}}, age);
      runs.Add({{"queue", q}}, static_cast<double>(v[i++].AsInt()));
      double held = 0;
      for (size_t n = 0; n < v[i].elements.size(); ++n, ++si) {
        const int64_t at = since_replies[si].AsInt(0);
        if (at > 0 && now_ms > 0)
          held = std::max(held, (now_ms - static_cast<double>(at)) / 1000.0);
      }
      ++i;
      leased_age.Add({{"queue", q}}, held);
      paused.Add({{"queue", q}}, v[i++].AsInt() == 1 ? 1 : 0);
    }
    return Families{depth.Take(), oldest.Take(), runs.Take(), leased_age.Take(), paused.Take()};
  }

 private:
  std::shared_ptr<SharedRedis> redis_;
  std::vector<std::string> queues_;
};

}  // namespace

std::unique_ptr<Collector> MakeQueueCollector(std::shared_ptr<SharedRedis> redis,
                                              std::vector<std::string> queues) {
  return std::make_unique<QueueCollector>(std::move(redis), std::move(queues));
}

}  // namespace scenefarm::exporter
