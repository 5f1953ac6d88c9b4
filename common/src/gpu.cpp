#include "scenefarm/gpu.h"

#include <dlfcn.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

namespace scenefarm::gpu {
namespace {

using json = nlohmann::json;
constexpr double kMiB = 1024.0 * 1024.0;

std::string Trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::optional<double> Number(const std::string& field) {
  const std::string t = Trim(field);
  if (t.empty() || t[0] == '[') return std::nullopt;  // "[N/A]", "[Not Supported]"
  try {
    size_t used = 0;
    const double v = std::stod(t, &used);
    if (used != t.size()) return std::nullopt;
    return v;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// "cuda:0 NVIDIA GeForce RTX 3090 : cudaMallocAsync" -> "NVIDIA GeForce RTX 3090".
std::string CleanDeviceName(std::string name) {
  if (name.rfind("cuda:", 0) == 0) {
    const auto sp = name.find(' ');
    name = sp == std::string::npos ? name : name.substr(sp + 1);
  }
  const auto colon = name.rfind(" : ");
  if (colon != std::string::npos) name = name.substr(0, colon);
  return Trim(name);
}

// NVML's C ABI, the few calls used (nvml.h, stable since the _v2 entry points).
using nvmlDevice_t = void*;
struct nvmlMemory_t {
  unsigned long long total, free, used;
};
struct nvmlUtilization_t {
  unsigned int gpu, memory;
};
struct Nvml {
  int (*init)();
  int (*count)(unsigned int*);
  int (*handle)(unsigned int, nvmlDevice_t*);
  int (*name)(nvmlDevice_t, char*, unsigned int);
  int (*memory)(nvmlDevice_t, nvmlMemory_t*);
  int (*temperature)(nvmlDevice_t, int, unsigned int*);
  int (*utilization)(nvmlDevice_t, nvmlUtilization_t*);
  int (*power)(nvmlDevice_t, unsigned int*);
  int (*uuid)(nvmlDevice_t, char*, unsigned int);
  int (*driver)(char*, unsigned int);
  bool ok = false;
  std::string error;
};

// Loaded once per library path for the life of the process (NVML is reference counted and
// cheap to keep initialised).
const Nvml& LoadNvml(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Nvml>> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = loaded[path];
  if (slot) return *slot;
  slot = std::make_unique<Nvml>();
  Nvml& nvml = *slot;
  {
    void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = dlerror();
      nvml.error = path + " not loadable: " + (e ? e : "unknown");
      return nvml;
    }
    auto sym = [&](const char* n) { return dlsym(lib, n); };
    nvml.init = reinterpret_cast<int (*)()>(sym("nvmlInit_v2"));
    nvml.count = reinterpret_cast<int (*)(unsigned int*)>(sym("nvmlDeviceGetCount_v2"));
    nvml.handle = reinterpret_cast<int (*)(unsigned int, nvmlDevice_t*)>(
        sym("nvmlDeviceGetHandleByIndex_v2"));
    nvml.name =
        reinterpret_cast<int (*)(nvmlDevice_t, char*, unsigned int)>(sym("nvmlDeviceGetName"));
    nvml.memory =
        reinterpret_cast<int (*)(nvmlDevice_t, nvmlMemory_t*)>(sym("nvmlDeviceGetMemoryInfo"));
    nvml.temperature = reinterpret_cast<int (*)(nvmlDevice_t, int, unsigned int*)>(
        sym("nvmlDeviceGetTemperature"));
    nvml.utilization = reinterpret_cast<int (*)(nvmlDevice_t, nvmlUtilization_t*)>(
        sym("nvmlDeviceGetUtilizationRates"));
    nvml.power =
        reinterpret_cast<int (*)(nvmlDevice_t, unsigned int*)>(sym("nvmlDeviceGetPowerUsage"));
    nvml.uuid =
        reinterpret_cast<int (*)(nvmlDevice_t, char*, unsigned int)>(sym("nvmlDeviceGetUUID"));
    nvml.driver = reinterpret_cast<int (*)(char*, unsigned int)>(sym("nvmlSystemGetDriverVersion"));
    if (!nvml.init || !nvml.count || !nvml.handle || !nvml.name || !nvml.memory) {
      nvml.error = path + " lacks the NVML v2 entry points";
      return nvml;
    }
    const int rc = nvml.init();
    if (rc != 0) {
      nvml.error = "nvmlInit_v2 failed with NVML error " + std::to_string(rc);
      return nvml;
    }
    nvml.ok = true;
  }
  return nvml;
}

}  // namespace

std::vector<Reading> FromSystemStats(const json& stats) {
  std::vector<Reading> out;
  if (!stats.is_object()) return out;
  for (const auto& d : stats.value("devices", json::array())) {
    if (!d.is_object()) continue;
    Reading r;
    r.index = d.contains("index") && d["index"].is_number_integer() ? d["index"].get<int>()
                                                                    : static_cast<int>(out.size());
    r.type = d.value("type", "");
    r.name = r.type == "cpu" ? "cpu" : CleanDeviceName(d.value("name", ""));
    if (d.contains("vram_free") && d["vram_free"].is_number())
      r.free_mb = d["vram_free"].get<double>() / kMiB;
    if (d.contains("vram_total") && d["vram_total"].is_number())
      r.total_mb = d["vram_total"].get<double>() / kMiB;
    r.source = "system_stats";
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<Reading> ParseNvidiaSmiCsv(const std::string& csv) {
  std::vector<Reading> out;
  std::istringstream in(csv);
  std::string line;
  while (std::getline(in, line)) {
    if (Trim(line).empty()) continue;
    std::vector<std::string> f;
    std::string cell;
    std::istringstream ls(line);
    while (std::getline(ls, cell, ','))
      f.push_back(cell);
    if (f.size() < 4) continue;
    Reading r;
    r.index = static_cast<int>(Number(f[0]).value_or(static_cast<double>(out.size())));
    r.name = Trim(f[1]);
    r.type = "cuda";
    r.free_mb = Number(f[2]);
    r.total_mb = Number(f[3]);
    if (f.size() > 4) r.temperature_celsius = Number(f[4]);
    if (f.size() > 5) {
      if (auto u = Number(f[5])) r.utilization_ratio = *u / 100.0;
    }
    if (f.size() > 6) r.power_watts = Number(f[6]);
    if (f.size() > 7) r.uuid = Trim(f[7]);
    if (f.size() > 8) r.driver = Trim(f[8]);
    r.source = "nvidia-smi";
    out.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<Reading>> ReadNvidiaSmi(const std::string& binary) {
  const std::string cmd =
      binary + " " + kNvidiaSmiQuery + " --format=csv,noheader,nounits 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return Status::Unavailable("cannot run " + binary);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0)
    out.append(buf.data(), n);
  const int rc = pclose(p);
  if (rc != 0) {
    return Status::Unavailable(binary + " failed (exit " +
                               std::to_string(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1) + ")");
  }
  auto readings = ParseNvidiaSmiCsv(out);
  if (readings.empty()) return Status::Unavailable(binary + " listed no GPU");
  return readings;
}

Result<std::vector<Reading>> ReadNvml(const std::string& library) {
  std::string path = library;
  if (path.empty()) {
    const char* env = std::getenv("SCENEFARM_NVML_LIBRARY");
    path = env && *env ? env : "libnvidia-ml.so.1";
  }
  const Nvml& nvml = LoadNvml(path);
  if (!nvml.ok) return Status::Unavailable(nvml.error);
  unsigned int count = 0;
  if (nvml.count(&count) != 0 || count == 0) return Status::Unavailable("NVML lists no GPU");
  std::vector<Reading> out;
  for (unsigned int i = 0; i < count; ++i) {
    nvmlDevice_t dev = nullptr;
    if (nvml.handle(i, &dev) != 0) continue;
    Reading r;
    r.index = static_cast<int>(i);
    r.type = "cuda";
    r.source = "nvml";
    char name[96] = {0};
    if (nvml.name(dev, name, sizeof(name)) == 0) r.name = name;
    nvmlMemory_t mem{};
    if (nvml.memory(dev, &mem) == 0) {
      r.free_mb = static_cast<double>(mem.free) / kMiB;
      r.total_mb = static_cast<double>(mem.total) / kMiB;
    }
    unsigned int temp = 0;
    if (nvml.temperature && nvml.temperature(dev, /*NVML_TEMPERATURE_GPU=*/0, &temp) == 0)
      r.temperature_celsius = temp;
    nvmlUtilization_t util{};
    if (nvml.utilization && nvml.utilization(dev, &util) == 0)
      r.utilization_ratio = util.gpu / 100.0;
    unsigned int mw = 0;
    if (nvml.power && nvml.power(dev, &mw) == 0) r.power_watts = mw / 1000.0;
    char uuid[96] = {0};
    if (nvml.uuid && nvml.uuid(dev, uuid, sizeof(uuid)) == 0) r.uuid = uuid;
    char driver[96] = {0};
    if (nvml.driver && nvml.driver(driver, sizeof(driver)) == 0) r.driver = driver;
    out.push_back(std::move(r));
  }
  if (out.empty()) return Status::Unavailable("NVML: no readable GPU");
  return out;
}

}  // namespace scenefarm::gpu
