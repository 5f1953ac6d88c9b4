// comfyui: per configured instance, up, probe duration, queue running/pending (GET /queue) and
// its devices' memory (GET /system_stats).
#include <chrono>

#include <nlohmann/json.hpp>

#include "api.h"
#include "collector.h"
#include "families.h"
#include "scenefarm/clock.h"
#include "scenefarm/gpu.h"
#include "scenefarm/http_client.h"

namespace scenefarm::exporter {
namespace {

using json = nlohmann::json;

class ComfyUiCollector : public Collector {
 public:
  ComfyUiCollector(std::vector<std::string> urls, std::chrono::milliseconds timeout)
      : Collector("comfyui"), urls_(std::move(urls)), timeout_(timeout) {}

  Result<Families> Scrape() const override {
    Family up = Gauge(names::kComfyUiUp, "1 when the ComfyUI instance answered /queue.");
    Family dur = Gauge(names::kComfyUiProbeDuration, "Time the probe of the instance took.");
    Family queue = Gauge(names::kComfyUiQueue, "Prompts in the instance's queue by state.");
    Family vfree = Gauge(names::kComfyUiDeviceMemoryFree,
                         "Free memory of each device as /system_stats reports it.");
    Family vtotal = Gauge(names::kComfyUiDeviceMemoryTotal,
                          "Total memory of each device as /system_stats reports it.");
    json seen = json::array();  // for GET /api/comfyui
    for (const auto& url : urls_) {
      const Labels inst = {{"instance", url}};
      const auto t0 = std::chrono::steady_clock::now();
      http::Client c(url, {timeout_, timeout_});
      auto q = c.Get("/queue");
      json qj = q.ok() && q->status == 200 ? json::parse(q->body, nullptr, false) : json();
      const bool ok = qj.is_object();
      seen.push_back(
          {{"url", url},
           {"up", ok},
           {"queue_running", ok ? json(qj.value("queue_running", json::array()).size()) : json()},
           {"queue_pending", ok ? json(qj.value("queue_pending", json::array()).size()) : json()}});
      if (ok) {
        queue.Add({{"instance", url}, {"state", "running"}},
                  static_cast<double>(qj.value("queue_running", json::array()).size()));
        queue.Add({{"instance", url}, {"state", "pending"}},
                  static_cast<double>(qj.value("queue_pending", json::array()).size()));
        auto s = c.Get("/system_stats");
        json sj = s.ok() && s->status == 200 ? json::parse(s->body, nullptr, false) : json();
        for (const auto& d : gpu::FromSystemStats(sj)) {
          const Labels l = {
              {"instance", url}, {"device", std::to_string(d.index)}, {"type", d.type}};
          if (d.free_mb) vfree.Add(l, *d.free_mb * 1048576.0);
          if (d.total_mb) vtotal.Add(l, *d.total_mb * 1048576.0);
        }
      }
      up.Add(inst, ok ? 1 : 0);
      dur.Add(inst, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    {
      ComfyUiSeen& last = LastComfyUiSeen();
      std::lock_guard<std::mutex> lock(last.mu);
      last.instances = std::move(seen);
      last.at_ms = SystemClock().NowMs();
    }
    // A ComfyUI that is down is reported (up 0), not a failure of this collector.
    Families out;
    for (Family* f : {&up, &dur, &queue, &vfree, &vtotal}) {
      if (!f->empty()) out.push_back(f->Take());
    }
    return out;
  }

 private:
  std::vector<std::string> urls_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

std::unique_ptr<Collector> MakeComfyUiCollector(std::vector<std::string> urls,
                                                std::chrono::milliseconds timeout) {
  return std::make_unique<ComfyUiCollector>(std::move(urls), timeout);
}

}  // namespace scenefarm::exporter
