// GPU readings for telemetry and the exporter, from three sources in this order of preference
// for the caller (docs/metrics.md, "Readings from workers"): NVML (loaded at run time with dlopen,
// no build dependency on CUDA), ComfyUI's /system_stats, and `nvidia-smi --query-gpu ...
// --format=csv`.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scenefarm/status.h"

namespace scenefarm::gpu {

struct Reading {
  int index = 0;
  std::string name;  // "NVIDIA GeForce RTX 3090"; "cpu" for a CPU-only ComfyUI
  std::string type;  // "cuda", "cpu", ...
  std::optional<double> free_mb, total_mb;
  std::optional<double> temperature_celsius;
  std::optional<double> utilization_ratio;  // 0..1
  std::optional<double> power_watts;
  std::string uuid;    // "GPU-..." (NVML, nvidia-smi); "" otherwise
  std::string driver;  // driver version (NVML, nvidia-smi)
  std::string source;  // "nvml", "system_stats", "nvidia-smi"
};

// The devices of a /system_stats answer. "cuda:0 NVIDIA GeForce RTX 3090 : cudaMallocAsync"
// becomes "NVIDIA GeForce RTX 3090". Bytes become MiB.
std::vector<Reading> FromSystemStats(const nlohmann::json& stats);

// `nvidia-smi --query-gpu=index,name,memory.free,memory.total,temperature.gpu,utilization.gpu
// --format=csv,noheader,nounits`; "[N/A]" fields stay empty.
std::vector<Reading> ParseNvidiaSmiCsv(const std::string& csv);
// Columns: index,name,memory.free,memory.total,temperature.gpu,utilization.gpu[,power.draw,
// uuid,driver_version].
inline constexpr char kNvidiaSmiQuery[] =
    "--query-gpu=index,name,memory.free,memory.total,temperature.gpu,utilization.gpu,power.draw,"
    "uuid,driver_version";
// Runs nvidia-smi (found on PATH unless `binary` names it, no shell) for at most `timeout`:
// kUnavailable when it cannot run, exits non-zero or lists no GPU; kDeadlineExceeded when it
// runs longer, after its whole process group has been killed. At most 64 KiB of its output is
// read. Thread-safe.
inline constexpr std::chrono::milliseconds kNvidiaSmiTimeout{5000};
Result<std::vector<Reading>> ReadNvidiaSmi(const std::string& binary = "nvidia-smi",
                                           std::chrono::milliseconds timeout = kNvidiaSmiTimeout);

// NVML through dlopen(library); kUnavailable when the library or a GPU is missing. The default
// is the driver's libnvidia-ml.so.1; SCENEFARM_NVML_LIBRARY names another (tests load a fake).
// A library that loaded and initialised stays loaded for the life of the process; one that
// failed to load or initialise is closed again and tried afresh at the next call (a driver
// installed or recovered later is found without a restart). Thread-safe.
Result<std::vector<Reading>> ReadNvml(const std::string& library = "");

}  // namespace scenefarm::gpu
