// workers: live workers (heartbeat within the window), busy and idle; per-worker series only
// behind --worker-labels, since worker ids are unbounded over a farm's life.
#include "collector.h"
#include "families.h"
#include "scenefarm/queue.h"

namespace scenefarm::exporter {
namespace {

// ARGV: the workers zset, the worker hash prefix, the oldest live heartbeat (ms), "1" for the
// per-worker triples. Returns {live, busy, {id, heartbeat ms, busy mark, ...}}.
// The heartbeats (the zset's scores) are read only for the per-worker triples: WITHSCORES makes
// Redis print every score as a decimal string, which at 10,000 workers cost more of its time
// than the 10,000 HGETs of the busy marks (issue #14 P8).
constexpr redis::Script kLiveWorkers = {"live_workers", R"lua(
local per_worker = ARGV[4] == '1'
local ids
if per_worker then
  ids = redis.call('ZRANGEBYSCORE', ARGV[1], ARGV[3], '+inf', 'WITHSCORES')
else
  ids = redis.call('ZRANGEBYSCORE', ARGV[1], ARGV[3], '+inf')
end
local step = per_worker and 2 or 1
local busy, per = 0, {}
for i = 1, #ids, step do
  local b = redis.call('HGET', ARGV[2] .. ids[i], 'busy')
  if b == '1' then busy = busy + 1 end
  if per_worker then
    per[#per + 1] = ids[i]
    per[#per + 1] = ids[i + 1]
    per[#per + 1] = b or '0'
  end
end
return {#ids / step, busy, per}
)lua"};

class WorkersCollector : public Collector {
 public:
  WorkersCollector(std::shared_ptr<SharedRedis> redis, std::chrono::milliseconds window,
                   bool per_worker)
      : Collector("workers"), redis_(std::move(redis)), window_(window), per_worker_(per_worker) {}

  Result<Families> Scrape() const override {
    std::lock_guard<std::mutex> lock(redis_->mu);
    auto& c = redis_->client;
    auto t = c.Command({"TIME"});
    if (!t.ok()) return t.status();
    if (t->elements.size() != 2) return Status::Internal("TIME: unexpected reply");
    const int64_t now_ms = t->elements[0].AsInt() * 1000 + t->elements[1].AsInt() / 1000;
    // One script call, whatever the number of workers (issue #14 P8): Redis counts the busy
    // marks of the live workers and returns the counts, and each worker's id, heartbeat and
    // mark only with --worker-labels. A pipeline of one HGET per worker made 10,000 replies
    // per scrape at 10,000 workers, most of the scrape's time and memory.
    auto r =
        c.Eval(kLiveWorkers, {queue::kWorkersKey, queue::WorkerKey(""),
                              std::to_string(now_ms - window_.count()), per_worker_ ? "1" : "0"});
    if (!r.ok()) return r.status();
    if (r->is_error()) return Status::Internal("live_workers.lua: " + r->str);
    if (r->elements.size() != 3) return Status::Internal("live_workers.lua: unexpected reply");
    const int64_t n_live = r->elements[0].AsInt();
    const int64_t n_busy = r->elements[1].AsInt();
    Family per_busy = Gauge(names::kWorkerBusy, "1 while the worker renders a scene.");
    Family per_age =
        Gauge(names::kWorkerHeartbeatAge, "Seconds since the worker's last heartbeat.");
    const auto& per = r->elements[2].elements;
    for (size_t i = 0; per_worker_ && i + 3 <= per.size(); i += 3) {
      const std::string& id = per[i].str;
      const double beat = std::stod(per[i + 1].AsString());
      per_busy.Add({{"worker", id}}, per[i + 2].AsString() == "1" ? 1 : 0);
      per_age.Add({{"worker", id}}, (now_ms - beat) / 1000.0);
    }
    Families out;
    out.push_back(Gauge(names::kWorkersLive, "Workers whose heartbeat is within the window.")
                      .Add({}, static_cast<double>(n_live))
                      .Take());
    out.push_back(Gauge(names::kWorkersBusy, "Live workers rendering a scene.")
                      .Add({}, static_cast<double>(n_busy))
                      .Take());
    out.push_back(Gauge(names::kWorkersIdle, "Live workers waiting for a scene.")
                      .Add({}, static_cast<double>(n_live - n_busy))
                      .Take());
    if (per_worker_ && !per_busy.empty()) {
      out.push_back(per_busy.Take());
      out.push_back(per_age.Take());
    }
    return out;
  }

 private:
  std::shared_ptr<SharedRedis> redis_;
  std::chrono::milliseconds window_;
  bool per_worker_;
};

}  // namespace

std::unique_ptr<Collector> MakeWorkersCollector(std::shared_ptr<SharedRedis> redis,
                                                std::chrono::milliseconds live_window,
                                                bool per_worker_labels) {
  return std::make_unique<WorkersCollector>(std::move(redis), live_window, per_worker_labels);
}

}  // namespace scenefarm::exporter
