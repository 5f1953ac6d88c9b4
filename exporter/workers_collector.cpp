// workers: live workers (heartbeat within the window), busy and idle; per-worker series only
// behind --worker-labels, since worker ids are unbounded over a farm's life.
#include "collector.h"
#include "families.h"
#include "scenefarm/queue.h"

namespace scenefarm::exporter {
namespace {

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
    auto live = c.Command({"ZRANGEBYSCORE", queue::kWorkersKey,
                           std::to_string(now_ms - window_.count()), "+inf", "WITHSCORES"});
    if (!live.ok()) return live.status();
    std::vector<std::pair<std::string, int64_t>> workers;
    for (size_t i = 0; i + 1 < live->elements.size(); i += 2)
      workers.emplace_back(live->elements[i].str, std::stoll(live->elements[i + 1].AsString()));
    std::vector<std::vector<std::string>> cmds;
    for (const auto& [id, _] : workers)
      cmds.push_back({"HGET", queue::WorkerKey(id), "busy"});
    std::vector<redis::Value> busy;
    if (!cmds.empty()) {
      auto r = c.Pipeline(cmds);
      if (!r.ok()) return r.status();
      busy = std::move(r).value();
    }
    int64_t n_busy = 0;
    Family per_busy = Gauge(names::kWorkerBusy, "1 while the worker renders a scene.");
    Family per_age =
        Gauge(names::kWorkerHeartbeatAge, "Seconds since the worker's last heartbeat.");
    for (size_t i = 0; i < workers.size(); ++i) {
      const bool b = i < busy.size() && busy[i].AsString() == "1";
      n_busy += b;
      if (per_worker_) {
        per_busy.Add({{"worker", workers[i].first}}, b ? 1 : 0);
        per_age.Add({{"worker", workers[i].first}}, (now_ms - workers[i].second) / 1000.0);
      }
    }
    Families out;
    out.push_back(Gauge(names::kWorkersLive, "Workers whose heartbeat is within the window.")
                      .Add({}, static_cast<double>(workers.size()))
                      .Take());
    out.push_back(Gauge(names::kWorkersBusy, "Live workers rendering a scene.")
                      .Add({}, static_cast<double>(n_busy))
                      .Take());
    out.push_back(Gauge(names::kWorkersIdle, "Live workers waiting for a scene.")
                      .Add({}, static_cast<double>(workers.size() - n_busy))
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
