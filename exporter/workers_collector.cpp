// workers: live workers (heartbeat within the window), busy and idle; per-worker series only
// behind --worker-labels, since worker ids are unbounded over a farm's life.
#include "collector.h"
#include "families.h"
#include "live_workers.h"

namespace scenefarm::exporter {
namespace {

class WorkersCollector : public Collector {
 public:
  WorkersCollector(std::shared_ptr<LiveWorkers> live, bool per_worker)
      : Collector("workers"), live_(std::move(live)), per_worker_(per_worker) {}

  Result<Families> Scrape() const override {
    // One walk of the live workers a scrape, shared with worker_readings (live_workers.h).
    auto got = live_->Get(CurrentScrape());
    if (!got.ok()) return got.status();
    const LiveWorkersSnapshot& w = **got;
    const int64_t n_live = w.live;
    const int64_t n_busy = w.busy;
    Family per_busy = Gauge(names::kWorkerBusy, "1 while the worker renders a scene.");
    Family per_age =
        Gauge(names::kWorkerHeartbeatAge, "Seconds since the worker's last heartbeat.");
    for (const auto& one : w.per_worker) {
      per_busy.Add({{"worker", one.id}}, one.busy ? 1 : 0);
      per_age.Add({{"worker", one.id}}, (w.now_ms - one.heartbeat_ms) / 1000.0);
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
  std::shared_ptr<LiveWorkers> live_;
  bool per_worker_;
};

}  // namespace

std::unique_ptr<Collector> MakeWorkersCollector(std::shared_ptr<LiveWorkers> live,
                                                bool per_worker_labels) {
  return std::make_unique<WorkersCollector>(std::move(live), per_worker_labels);
}

}  // namespace scenefarm::exporter
