// worker_readings: what every live worker read of its host at its last heartbeat (the GPUs of
// the ComfyUI it drives, the free space of its directories; scenefarm/readings.h), published per
// instance (the ComfyUI URL), gpu, uuid and worker. A worker whose heartbeat is older than the
// live window is not reported, so the series of a worker that is gone disappear.
#include <cmath>

#include "collector.h"
#include "families.h"
#include "scenefarm/queue.h"
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

// ARGV: the workers zset, the worker hash prefix, the oldest live heartbeat (ms), the readings
// field. Returns {id, document, ...} of the live workers with readings (an older worker has
// none).
constexpr redis::Script kLiveReadings = {"live_readings", R"lua(
local ids = redis.call('ZRANGEBYSCORE', ARGV[1], ARGV[3], '+inf')
local out = {}
for _, id in ipairs(ids) do
  local doc = redis.call('HGET', ARGV[2] .. id, ARGV[4])
  if doc then
    out[#out + 1] = id
    out[#out + 1] = doc
  end
end
return out
)lua"};

class WorkerReadingsCollector : public Collector {
 public:
  WorkerReadingsCollector(std::shared_ptr<SharedRedis> redis, std::chrono::milliseconds window)
      : Collector("worker_readings"), redis_(std::move(redis)), window_(window) {}

  Result<Families> Scrape() const override {
    int64_t now_ms = 0;
    auto live = Read(&now_ms);
    if (!live.ok()) return live.status();
    ReadingFamilies f;
    for (const auto& w : *live) {
      AddGpus(w, f);
      AddDisks(w, f);
      if (w.r.at_ms > 0)
        f.age.Add({{"worker", w.worker}}, std::max<double>(0, (now_ms - w.r.at_ms) / 1000.0));
    }
    return f.Take();
  }

 private:
  // The live workers' readings, in one round trip after the live set.
  Result<std::vector<LiveReadings>> Read(int64_t* now_ms) const {
    std::lock_guard<std::mutex> lock(redis_->mu);
    auto& c = redis_->client;
    auto t = c.Command({"TIME"});
    if (!t.ok()) return t.status();
    if (t->elements.size() != 2) return Status::Internal("TIME: unexpected reply");
    *now_ms = t->elements[0].AsInt() * 1000 + t->elements[1].AsInt() / 1000;
    // One script call: the live workers that published readings, as {id, document, ...}
    // (issue #14 P8: a pipeline of one HGET per live worker, readings or not, made 10,000
    // replies per scrape at 10,000 workers).
    auto r = c.Eval(kLiveReadings, {queue::kWorkersKey, queue::WorkerKey(""),
                                    std::to_string(*now_ms - window_.count()), readings::kField});
    if (!r.ok()) return r.status();
    if (r->is_error()) return Status::Internal("live_readings.lua: " + r->str);
    std::vector<LiveReadings> out;
    for (size_t i = 0; i + 1 < r->elements.size(); i += 2) {
      auto parsed = readings::HostReadings::FromJson(
          nlohmann::json::parse(r->elements[i + 1].AsString(), nullptr, false));
      if (parsed.ok()) out.push_back({r->elements[i].str, std::move(parsed).value()});
    }
    return out;
  }

  std::shared_ptr<SharedRedis> redis_;
  std::chrono::milliseconds window_;
};

}  // namespace

std::unique_ptr<Collector> MakeWorkerReadingsCollector(std::shared_ptr<SharedRedis> redis,
                                                       std::chrono::milliseconds live_window) {
  return std::make_unique<WorkerReadingsCollector>(std::move(redis), live_window);
}

}  // namespace scenefarm::exporter
