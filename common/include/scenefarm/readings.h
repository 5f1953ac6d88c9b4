// What a worker reads of its host at each heartbeat -- the GPU(s) of the ComfyUI it drives and
// the free space of its artifacts and ComfyUI output directories -- in the form it publishes in
// its worker hash (sf:worker:<id>, field "readings", one JSON document) and the exporter reads.
// The document is bounded whatever the host: at most kMaxGpus GPUs and kMaxDisks paths, every
// text cut to kMaxText bytes; it is replaced at each heartbeat, never appended to.
// Our persistent format (docs/metrics.md, "Readings from workers"): fields are only added.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scenefarm/gpu.h"
#include "scenefarm/keys.h"
#include "scenefarm/status.h"

namespace scenefarm::readings {

// The worker hash field that holds the document.
inline constexpr char kField[] = "readings";
// Farm-wide counters that belong to no queue: a hash; field kContractViolations counts the
// telemetry-contract violations workers found when they assembled a run.
inline constexpr const char* kFarmStatsKey = keys::kFarmStats;
inline constexpr char kContractViolations[] = "contract_violations";

inline constexpr size_t kMaxGpus = 16;
inline constexpr size_t kMaxDisks = 4;
inline constexpr size_t kMaxText = 128;

struct Gpu {
  std::string index;   // "0": NVML / nvidia-smi index, or /system_stats' device index
  std::string uuid;    // "GPU-..."; "" from /system_stats
  std::string name;    // "NVIDIA GeForce RTX 4090"
  std::string source;  // nvml | system_stats | nvidia-smi
  std::optional<double> free_bytes, total_bytes;
  std::optional<double> temperature_celsius, utilization_ratio, power_watts;
};

struct Disk {
  std::string path;  // as configured (SCENEFARM_ARTIFACTS_DIR, SCENEFARM_COMFYUI_OUTPUT_DIR)
  std::string role;  // artifacts | comfyui_output
  std::optional<double> free_bytes, total_bytes;  // absent when the path cannot be read
  std::string error;                              // why not
};

struct HostReadings {
  int64_t at_ms = 0;      // when read (the worker's clock)
  std::string instance;   // the ComfyUI the worker drives (SCENEFARM_COMFYUI_URL)
  std::vector<Gpu> gpus;  // empty when no source answered
  std::string gpu_error;  // why no GPU was read ("" when gpus is not empty)
  std::vector<Disk> disks;

  // The published document; bounded as the header says.
  nlohmann::json ToJson() const;
  // Never throws: kInvalidArgument for a document that is not an object; fields of the wrong
  // type are dropped, and the bounds are applied again (a foreign writer cannot grow a scrape).
  static Result<HostReadings> FromJson(const nlohmann::json& j);
};

// A reading of gpu.h's sources in this form (MiB become bytes).
Gpu FromGpuReading(const gpu::Reading& r);

}  // namespace scenefarm::readings
