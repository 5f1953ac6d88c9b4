// What a worker reads of its host each heartbeat and publishes with it (issue #16): the GPU(s)
// of the ComfyUI it drives -- NVML through dlopen when this host has the driver, else that
// ComfyUI's /system_stats, else nvidia-smi (SCENEFARM_GPU_SOURCE picks one) -- and the free
// space of its artifacts and ComfyUI output directories. The document (scenefarm/readings.h)
// is bounded and replaces the previous one, so a worker's footprint in Redis never grows.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "scenefarm/clock.h"
#include "scenefarm/gpu.h"
#include "scenefarm/options.h"
#include "scenefarm/readings.h"
#include "scenefarm/redis.h"

namespace scenefarm::worker {

// The GPU sources, replaceable in tests. Each returns the host's (or the ComfyUI's) devices.
struct GpuSources {
  std::function<Result<std::vector<gpu::Reading>>()> nvml, system_stats, nvidia_smi;
  // NVML through SCENEFARM_NVML_LIBRARY or the driver, /system_stats of options.comfyui_url
  // (with `timeout`), nvidia-smi on PATH (with `timeout`).
  static GpuSources Real(const WorkerOptions& options, std::chrono::milliseconds timeout);
};

// One reading of the host. Pure apart from the sources and statvfs; thread-compatible.
class HostReader {
 public:
  HostReader(const WorkerOptions& options, GpuSources sources, const Clock& clock);
  readings::HostReadings Read() const;

 private:
  std::vector<readings::Gpu> ReadGpus(std::string* error) const;
  std::vector<gpu::Reading> KeepComfyUiGpus(std::vector<gpu::Reading> all) const;

  WorkerOptions options_;
  GpuSources sources_;
  const Clock& clock_;
  std::vector<std::string> gpus_;  // SCENEFARM_COMFYUI_GPUS; empty = all
};

// Free space of the filesystem holding `path`; error set when it cannot be read.
readings::Disk ReadDisk(const std::string& path, const std::string& role);

// Reads the host every `period` on a thread of its own (a slow nvidia-smi or ComfyUI never
// delays a lease renewal) and publishes the latest reading when asked, with the heartbeat.
class HostReadingsPublisher {
 public:
  HostReadingsPublisher(HostReader reader, std::chrono::milliseconds period);
  ~HostReadingsPublisher();  // stops and joins the thread
  HostReadingsPublisher(const HostReadingsPublisher&) = delete;
  HostReadingsPublisher& operator=(const HostReadingsPublisher&) = delete;

  // HSET sf:worker:<worker_id> readings <the latest document>; nothing before the first
  // reading. Errors are the caller's to log or ignore (the next heartbeat publishes again).
  Status Publish(redis::Client& client, const std::string& worker_id);
  // The latest document ("" before the first reading).
  std::string Latest() const;

 private:
  void Loop();

  HostReader reader_;
  const std::chrono::milliseconds period_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;   // guarded by mu_
  std::string latest_;  // guarded by mu_
  std::thread thread_;
};

// The heartbeat's hook: a publisher for these options, reading every heartbeat period.
std::unique_ptr<HostReadingsPublisher> StartHostReadings(const WorkerOptions& options,
                                                         const Clock& clock);

}  // namespace scenefarm::worker
