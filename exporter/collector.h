// One collector per source (queue, workers, scenes, gpu, comfyui, llm, redis), each a
// prometheus::Collectable in its own file, registered in one place (collector_set.cpp).
// Scrape() says whether its source answered; Collect() is Scrape() without the verdict.
// Every I/O of a collector is bounded by its timeout; a source that fails or times out yields
// no families and success 0, never a failed scrape.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "scenefarm/redis.h"
#include "scenefarm/status.h"

namespace scenefarm::exporter {

using Families = std::vector<prometheus::MetricFamily>;

class Collector : public prometheus::Collectable {
 public:
  explicit Collector(std::string name) : name_(std::move(name)) {}
  const std::string& name() const { return name_; }
  virtual Result<Families> Scrape() const = 0;
  Families Collect() const override {
    auto r = Scrape();
    return r.ok() ? std::move(r).value() : Families{};
  }

 private:
  std::string name_;
};

// A Redis connection shared by the Redis-backed collectors of one exporter. redis::Client is not
// thread-safe; civetweb may serve two scrapes at once, so every use holds the lock.
struct SharedRedis {
  explicit SharedRedis(redis::Options options) : client(std::move(options)) {}
  std::mutex mu;
  redis::Client client;
};

// The queues to report: the configured ones plus every queue recorded in sf:queues.
Result<std::vector<std::string>> QueuesToReport(redis::Client& client,
                                                const std::vector<std::string>& configured);

std::unique_ptr<Collector> MakeQueueCollector(std::shared_ptr<SharedRedis> redis,
                                              std::vector<std::string> queues);
// The number of the scrape the calling collector runs for (CollectorSet runs each collector on
// a thread of its own and sets it there); 0 outside a CollectorSet. Collectors that share a
// read within one scrape (LiveWorkers) key it on this.
uint64_t CurrentScrape();

class LiveWorkers;  // live_workers.h: one walk of the live workers a scrape, for both below
std::unique_ptr<Collector> MakeWorkersCollector(std::shared_ptr<LiveWorkers> live,
                                                bool per_worker_labels);
std::unique_ptr<Collector> MakeScenesCollector(std::shared_ptr<SharedRedis> redis,
                                               std::vector<std::string> queues);
std::unique_ptr<Collector> MakeRedisCollector(std::shared_ptr<SharedRedis> redis);
// What each live worker read of its host at its last heartbeat: GPU families labelled
// instance, gpu, uuid, worker; disk families labelled worker, path.
std::unique_ptr<Collector> MakeWorkerReadingsCollector(std::shared_ptr<LiveWorkers> live);
// source: auto (NVML, then the first ComfyUI's /system_stats, then nvidia-smi), nvml,
// system_stats, nvidia-smi.
std::unique_ptr<Collector> MakeGpuCollector(std::string source, std::string comfyui_url,
                                            std::chrono::milliseconds timeout);
std::unique_ptr<Collector> MakeComfyUiCollector(std::vector<std::string> urls,
                                                std::chrono::milliseconds timeout);
// The optional generation probe of the LLM collector; no model = no probe.
struct LlmGeneration {
  std::string model;
  std::chrono::milliseconds interval{60000};
  std::chrono::milliseconds timeout{300000};
};
// GET /v1/models at each scrape (within `timeout`), plus the generation probe on its own thread.
std::unique_ptr<Collector> MakeLlmCollector(std::string url, std::chrono::milliseconds timeout,
                                            LlmGeneration generation = {});

}  // namespace scenefarm::exporter
