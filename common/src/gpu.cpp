#include "scenefarm/gpu.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>

#include "scenefarm/handles.h"

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
  DlHandle lib;
  int (*init)() = nullptr;
  int (*count)(unsigned int*) = nullptr;
  int (*handle)(unsigned int, nvmlDevice_t*) = nullptr;
  int (*name)(nvmlDevice_t, char*, unsigned int) = nullptr;
  int (*memory)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  int (*temperature)(nvmlDevice_t, int, unsigned int*) = nullptr;
  int (*utilization)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  int (*power)(nvmlDevice_t, unsigned int*) = nullptr;
  int (*uuid)(nvmlDevice_t, char*, unsigned int) = nullptr;
  int (*driver)(char*, unsigned int) = nullptr;
};

// Opens and initialises NVML from `path`; the error says why not.
Result<std::unique_ptr<Nvml>> OpenNvml(const std::string& path) {
  auto nvml = std::make_unique<Nvml>();
  nvml->lib.reset(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL));
  if (!nvml->lib) {
    const char* e = dlerror();
    return Status::Unavailable(path + " not loadable: " + (e ? e : "unknown"));
  }
  void* lib = nvml->lib.get();
  BindSymbol(lib, "nvmlInit_v2", &nvml->init);
  BindSymbol(lib, "nvmlDeviceGetCount_v2", &nvml->count);
  BindSymbol(lib, "nvmlDeviceGetHandleByIndex_v2", &nvml->handle);
  BindSymbol(lib, "nvmlDeviceGetName", &nvml->name);
  BindSymbol(lib, "nvmlDeviceGetMemoryInfo", &nvml->memory);
  BindSymbol(lib, "nvmlDeviceGetTemperature", &nvml->temperature);
  BindSymbol(lib, "nvmlDeviceGetUtilizationRates", &nvml->utilization);
  BindSymbol(lib, "nvmlDeviceGetPowerUsage", &nvml->power);
  BindSymbol(lib, "nvmlDeviceGetUUID", &nvml->uuid);
  BindSymbol(lib, "nvmlSystemGetDriverVersion", &nvml->driver);
  if (!nvml->init || !nvml->count || !nvml->handle || !nvml->name || !nvml->memory)
    return Status::Unavailable(path + " lacks the NVML v2 entry points");
  if (const int rc = nvml->init(); rc != 0)
    return Status::Unavailable("nvmlInit_v2 failed with NVML error " + std::to_string(rc));
  return nvml;
}

// An initialised NVML per library path, kept for the life of the process (NVML is reference
// counted and cheap to keep initialised). Failures are not kept: the next call tries again.
Result<const Nvml*> LoadNvml(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Nvml>> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto it = loaded.find(path);
  if (it != loaded.end()) return static_cast<const Nvml*>(it->second.get());
  auto opened = OpenNvml(path);
  if (!opened.ok()) return opened.status();
  const Nvml* nvml = opened->get();
  loaded.emplace(path, std::move(opened).value());
  return nvml;
}

// Reads `fd` until EOF, `deadline` or `limit` bytes; false on timeout.
bool ReadUntil(int fd, std::chrono::steady_clock::time_point deadline, size_t limit,
               std::string* out) {
  std::array<char, 4096> buf{};
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int rc = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) continue;  // re-check the deadline
    const ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    if (out->size() < limit) out->append(buf.data(), std::min<size_t>(n, limit - out->size()));
  }
}

// Runs argv (PATH searched, no shell) in its own process group with stdout captured; the whole
// group is killed when it outlives `timeout`.
Result<std::string> RunCaptured(const std::vector<std::string>& argv,
                                std::chrono::milliseconds timeout) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::Unavailable("pipe failed");
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attr, 0);
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  write_end.reset();  // the child's copy only: EOF once it exits
  if (err != 0) return Status::Unavailable("cannot run " + argv[0] + ": " + std::strerror(err));
  std::string out;
  const bool finished =
      ReadUntil(read_end.get(), std::chrono::steady_clock::now() + timeout, 64 * 1024, &out);
  read_end.reset();
  if (!finished) kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!finished) {
    return Status::DeadlineExceeded(argv[0] + " ran longer than " +
                                    std::to_string(timeout.count()) + " ms and was killed");
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::Unavailable(argv[0] + " failed (exit " +
                               std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
  }
  return out;
}

}  // namespace

std::vector<Reading> FromSystemStats(const json& stats) {
  std::vector<Reading> out;
  if (!stats.is_object()) return out;
  // JSON from ComfyUI: a field of the wrong type is skipped, never thrown on.
  auto str = [](const json& d, const char* k) {
    return d.contains(k) && d[k].is_string() ? d[k].get<std::string>() : std::string();
  };
  const auto devices = stats.find("devices");
  if (devices == stats.end() || !devices->is_array()) return out;
  for (const auto& d : *devices) {
    if (!d.is_object()) continue;
    Reading r;
    r.index = d.contains("index") && d["index"].is_number_integer() ? d["index"].get<int>()
                                                                    : static_cast<int>(out.size());
    r.type = str(d, "type");
    r.name = r.type == "cpu" ? "cpu" : CleanDeviceName(str(d, "name"));
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

Result<std::vector<Reading>> ReadNvidiaSmi(const std::string& binary,
                                           std::chrono::milliseconds timeout) {
  auto out = RunCaptured({binary, kNvidiaSmiQuery, "--format=csv,noheader,nounits"}, timeout);
  if (!out.ok()) return out.status();
  auto readings = ParseNvidiaSmiCsv(*out);
  if (readings.empty()) return Status::Unavailable(binary + " listed no GPU");
  return readings;
}

Result<std::vector<Reading>> ReadNvml(const std::string& library) {
  std::string path = library;
  if (path.empty()) {
    const char* env = std::getenv("SCENEFARM_NVML_LIBRARY");
    path = env && *env ? env : "libnvidia-ml.so.1";
  }
  auto loaded = LoadNvml(path);
  if (!loaded.ok()) return loaded.status();
  const Nvml& nvml = **loaded;
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
