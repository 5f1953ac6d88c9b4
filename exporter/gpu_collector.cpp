// gpu: NVML through dlopen (no CUDA build dependency), else ComfyUI's /system_stats (memory
// only), else nvidia-smi's CSV. The source in use is a label of scenefarm_gpu_info.
#include "collector.h"
#include "families.h"
#include "scenefarm/comfyui.h"
#include "scenefarm/gpu.h"

namespace scenefarm::exporter {
namespace {

class GpuCollector : public Collector {
 public:
  GpuCollector(std::string source, std::string comfyui_url, std::chrono::milliseconds timeout)
      : Collector("gpu"),
        source_(std::move(source)),
        comfyui_url_(std::move(comfyui_url)),
        timeout_(timeout) {}

  Result<std::vector<gpu::Reading>> Read() const {
    Status last = Status::Unavailable("no GPU source configured");
    if (source_ == "auto" || source_ == "nvml") {
      auto r = gpu::ReadNvml();
      if (r.ok() || source_ == "nvml") return r;
      last = r.status();
    }
    if ((source_ == "auto" || source_ == "system_stats") && !comfyui_url_.empty()) {
      comfyui::Client c(comfyui_url_, {timeout_, timeout_});
      auto s = c.SystemStats();
      if (s.ok()) {
        auto readings = gpu::FromSystemStats(*s);
        readings.erase(std::remove_if(readings.begin(), readings.end(),
                                      [](const gpu::Reading& r) { return r.type == "cpu"; }),
                       readings.end());
        if (!readings.empty()) return readings;
        last = Status::Unavailable("/system_stats lists no GPU");
      } else {
        last = s.status();
      }
      if (source_ == "system_stats") return last;
    }
    if (source_ == "auto" || source_ == "nvidia-smi")
      return gpu::ReadNvidiaSmi("nvidia-smi", timeout_);
    return last;
  }

  Result<Families> Scrape() const override {
    auto readings = Read();
    if (!readings.ok()) return readings.status();
    Family info = Gauge(names::kGpuInfo, "1 per GPU, with its name, driver and the source read.");
    Family total = Gauge(names::kGpuMemoryTotal, "GPU memory in total.");
    Family free = Gauge(names::kGpuMemoryFree, "GPU memory free.");
    Family used = Gauge(names::kGpuMemoryUsed, "GPU memory in use.");
    Family temp = Gauge(names::kGpuTemperature, "GPU die temperature.");
    Family util = Gauge(names::kGpuUtilization, "GPU core utilisation, 0 to 1.");
    Family power = Gauge(names::kGpuPower, "GPU power draw.");
    constexpr double kMiB = 1024.0 * 1024.0;
    for (const auto& r : *readings) {
      const Labels l = {{"gpu", std::to_string(r.index)}, {"uuid", r.uuid}};
      info.Add({{"gpu", std::to_string(r.index)},
                {"uuid", r.uuid},
                {"name", r.name},
                {"driver", r.driver},
                {"source", r.source}},
               1);
      if (r.total_mb) total.Add(l, *r.total_mb * kMiB);
      if (r.free_mb) free.Add(l, *r.free_mb * kMiB);
      if (r.total_mb && r.free_mb) used.Add(l, (*r.total_mb - *r.free_mb) * kMiB);
      if (r.temperature_celsius) temp.Add(l, *r.temperature_celsius);
      if (r.utilization_ratio) util.Add(l, *r.utilization_ratio);
      if (r.power_watts) power.Add(l, *r.power_watts);
    }
    Families out;
    for (Family* f : {&info, &total, &free, &used, &temp, &util, &power}) {
      if (!f->empty()) out.push_back(f->Take());
    }
    return out;
  }

 private:
  std::string source_, comfyui_url_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

std::unique_ptr<Collector> MakeGpuCollector(std::string source, std::string comfyui_url,
                                            std::chrono::milliseconds timeout) {
  return std::make_unique<GpuCollector>(std::move(source), std::move(comfyui_url), timeout);
}

}  // namespace scenefarm::exporter
