#include "collector_set.h"

#include <chrono>

#include "families.h"
#include "scenefarm/log.h"

namespace scenefarm::exporter {

Families CollectorSet::Collect() const {
  std::lock_guard<std::mutex> lock(mu_);
  last_ok_.resize(collectors_.size(), true);
  Families out;
  Family success =
      Gauge(names::kCollectorSuccess, "1 when the collector's source answered during this scrape.");
  Family duration = Gauge(names::kCollectorDuration, "Time the collector took during this scrape.");
  for (size_t i = 0; i < collectors_.size(); ++i) {
    const auto& c = *collectors_[i];
    const auto t0 = std::chrono::steady_clock::now();
    Result<Families> r = Status::Internal("not run");
    try {
      r = c.Scrape();
    } catch (const std::exception& e) {
      r = Status::Internal(std::string("collector threw: ") + e.what());
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r.ok()) {
      for (auto& f : *r)
        out.push_back(std::move(f));
    }
    if (r.ok() != last_ok_[i]) {  // log transitions, not every failing scrape
      if (r.ok()) {
        log::Info("collector_recovered", {{"collector", c.name()}});
      } else {
        log::Warn("collector_failed", {{"collector", c.name()}, {"error", r.status().ToString()}});
      }
      last_ok_[i] = r.ok();
    }
    success.Add({{"collector", c.name()}}, r.ok() ? 1 : 0);
    duration.Add({{"collector", c.name()}}, secs);
  }
  MergeSameName(&out);  // gpu and worker_readings serve the same GPU families
  out.push_back(success.Take());
  out.push_back(duration.Take());
  return out;
}

std::shared_ptr<CollectorSet> MakeCollectors(const ExporterOptions& o,
                                             std::shared_ptr<SharedRedis> redis) {
  auto set = std::make_shared<CollectorSet>();
  set->Add(MakeRedisCollector(redis));
  set->Add(MakeQueueCollector(redis, o.queues));
  set->Add(MakeWorkersCollector(redis, o.live_window(), o.worker_labels));
  set->Add(MakeScenesCollector(redis, o.queues));
  set->Add(MakeWorkerReadingsCollector(redis, o.live_window()));
  if (o.gpu_source != "none")
    set->Add(MakeGpuCollector(o.gpu_source, o.comfyui_urls.empty() ? "" : o.comfyui_urls.front(),
                              o.timeout()));
  if (!o.comfyui_urls.empty()) set->Add(MakeComfyUiCollector(o.comfyui_urls, o.timeout()));
  if (!o.llm_url.empty() && !o.llm_skip)
    set->Add(
        MakeLlmCollector(o.llm_url, o.timeout(),
                         {o.llm_model, o.llm_generation_interval(), o.llm_generation_timeout()}));
  return set;
}

}  // namespace scenefarm::exporter
