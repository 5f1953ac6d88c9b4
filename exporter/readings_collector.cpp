// worker_readings: what every live worker read of its host at its last heartbeat (the GPUs of
// the ComfyUI it drives, the free space of its directories; scenefarm/readings.h), published per
// instance (the ComfyUI URL), gpu, uuid and worker. A worker whose heartbeat is older than the
// live window is not reported, so the series of a worker that is gone disappear.
#include <cmath>

#include "collector.h"
#include "families.h"
#include "live_workers.h"
#include "scenefarm/readings.h"

namespace scenefarm::exporter {
namespace {

struct LiveReadings {
  std::string worker;
  readings::HostReadings r;
};

// The families this collector fills, in output order.
struct ReadingFamilies {
  Family info = Gauge(names::kGpuInfo, "1 per GPU, with its name, driver and the source read.");
  Family total = Gauge(names::kGpuMemoryTotal, "GPU memory in total.");
  Family free = Gauge(names::kGpuMemoryFree, "GPU memory free.");
  Family used = Gauge(names::kGpuMemoryUsed, "GPU memory in use.");
  Family temp = Gauge(names::kGpuTemperature, "GPU die temperature.");
  Family util = Gauge(names::kGpuUtilization, "GPU core utilisation, 0 to 1.");
  Family power = Gauge(names::kGpuPower, "GPU power draw.");
  Family disk_free =
      Gauge(names::kWorkerDiskFree,
            "Bytes free to the worker on the filesystem of each of its directories.");
  Family disk_total =
      Gauge(names::kWorkerDiskTotal, "Size of the filesystem of each of the worker's directories.");
  Family disk_ratio = Gauge(names::kWorkerDiskFreeRatio,
                            "Free share of the filesystem of each of the worker's directories.");
  Family age = Gauge(names::kWorkerReadingsAge, "Age of the worker's last host readings.");

  Families Take() {
    Families out;
    for (Family* f : {&info, &total, &free, &used, &temp, &util, &power, &disk_free, &disk_total,
                      &disk_ratio, &age}) {
      if (!f->empty()) out.push_back(f->Take());
    }
    return out;
  }
};

void AddGpus(const LiveReadings& w, ReadingFamilies& f) {
  for (const auto& g : w.r.gpus) {
    const Labels l = {
        {"instance", w.r.instance}, {"gpu", g.index}, {"uuid", g.uuid}, {"worker", w.worker}};
    f.info.Add({{"instance", w.r.instance},
                {"gpu", g.index},
                {"uuid", g.uuid},
                {"worker", w.worker},
                {"name", g.name},
                {"driver", ""},
                {"source", g.source}},
               1);
    if (g.total_bytes) f.total.Add(l, *g.total_bytes);
    if (g.free_bytes) f.free.Add(l, *g.free_bytes);
    if (g.total_bytes && g.free_bytes) f.used.Add(l, *g.total_bytes - *g.free_bytes);
    if (g.temperature_celsius) f.temp.Add(l, *g.temperature_celsius);
    if (g.utilization_ratio) f.util.Add(l, *g.utilization_ratio);
    if (g.power_watts) f.power.Add(l, *g.power_watts);
  }
}

void AddDisks(const LiveReadings& w, ReadingFamilies& f) {
  for (const auto& d : w.r.disks) {
    if (!d.free_bytes || !d.total_bytes) continue;  // unreadable: its error is in the document
    const Labels l = {{"worker", w.worker}, {"path", d.path}};
    f.disk_free.Add(l, *d.free_bytes);
    f.disk_total.Add(l, *d.total_bytes);
    if (*d.total_bytes > 0) f.disk_ratio.Add(l, *d.free_bytes / *d.total_bytes);
  }
}

class WorkerReadingsCollector : public Collector {
 public:
  explicit WorkerReadingsCollector(std::shared_ptr<LiveWorkers> live)
      : Collector("worker_readings"), live_(std::move(live)) {}

  Result<Families> Scrape() const override {
    // One walk of the live workers a scrape, shared with workers (live_workers.h): the
    // documents of the live workers that published readings.
    auto got = live_->Get(CurrentScrape());
    if (!got.ok()) return got.status();
    const LiveWorkersSnapshot& snap = **got;
    ReadingFamilies f;
    for (const auto& [id, doc] : snap.readings) {
      auto parsed = readings::HostReadings::FromJson(nlohmann::json::parse(doc, nullptr, false));
      if (!parsed.ok()) continue;
      const LiveReadings w{id, std::move(parsed).value()};
      AddGpus(w, f);
      AddDisks(w, f);
      if (w.r.at_ms > 0)
        f.age.Add({{"worker", w.worker}}, std::max<double>(0, (snap.now_ms - w.r.at_ms) / 1000.0));
    }
    return f.Take();
  }

 private:
  std::shared_ptr<LiveWorkers> live_;
};

}  // namespace

std::unique_ptr<Collector> MakeWorkerReadingsCollector(std::shared_ptr<LiveWorkers> live) {
  return std::make_unique<WorkerReadingsCollector>(std::move(live));
}

}  // namespace scenefarm::exporter
