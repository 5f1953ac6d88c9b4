#include "host_readings.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "scenefarm/comfyui.h"
#include "scenefarm/queue.h"

namespace scenefarm::worker {
namespace {

bool Uses(const std::string& source, const char* which) {
  return source == "auto" || source == which;
}

}  // namespace

GpuSources GpuSources::Real(const WorkerOptions& options, std::chrono::milliseconds timeout) {
  GpuSources s;
  s.nvml = [] { return gpu::ReadNvml(); };
  s.system_stats = [url = options.comfyui_url, timeout]() -> Result<std::vector<gpu::Reading>> {
    comfyui::Client c(url, {timeout, timeout});
    auto stats = c.SystemStats();
    if (!stats.ok()) return stats.status();
    return gpu::FromSystemStats(*stats);
  };
  s.nvidia_smi = [timeout] { return gpu::ReadNvidiaSmi("nvidia-smi", timeout); };
  return s;
}

HostReader::HostReader(const WorkerOptions& options, GpuSources sources, const Clock& clock)
    : options_(options),
      sources_(std::move(sources)),
      clock_(clock),
      gpus_(SplitList(options.comfyui_gpus)) {}

std::vector<gpu::Reading> HostReader::KeepComfyUiGpus(std::vector<gpu::Reading> all) const {
  if (gpus_.empty()) return all;
  std::vector<gpu::Reading> kept;
  for (auto& r : all) {
    const bool wanted = std::any_of(gpus_.begin(), gpus_.end(), [&](const std::string& g) {
      return g == std::to_string(r.index) || (!r.uuid.empty() && g == r.uuid);
    });
    if (wanted) kept.push_back(std::move(r));
  }
  return kept;
}

std::vector<readings::Gpu> HostReader::ReadGpus(std::string* error) const {
  const std::string& source = options_.gpu_source;
  std::vector<std::string> errors;
  auto take = [&](const char* name, const auto& read, bool host_wide) {
    std::vector<gpu::Reading> found;
    if (!Uses(source, name) || !read) return found;
    auto r = read();
    if (!r.ok()) {
      errors.push_back(std::string(name) + ": " + r.status().message());
      return found;
    }
    for (auto& d : *r)
      if (d.type != "cpu") found.push_back(std::move(d));  // a CPU-only ComfyUI has no GPU
    if (host_wide) found = KeepComfyUiGpus(std::move(found));
    if (found.empty()) errors.push_back(std::string(name) + ": no GPU of this ComfyUI");
    return found;
  };
  std::vector<gpu::Reading> found = take("nvml", sources_.nvml, true);
  if (found.empty()) found = take("system_stats", sources_.system_stats, false);
  if (found.empty()) found = take("nvidia-smi", sources_.nvidia_smi, true);
  std::vector<readings::Gpu> out;
  for (const auto& r : found)
    out.push_back(readings::FromGpuReading(r));
  if (out.empty() && source != "none") {
    for (const auto& e : errors)
      *error += (error->empty() ? "" : "; ") + e;
  }
  return out;
}

readings::Disk ReadDisk(const std::string& path, const std::string& role) {
  readings::Disk d;
  d.path = path;
  d.role = role;
  struct statvfs st {};
  if (statvfs(path.c_str(), &st) != 0) {
    d.error = std::strerror(errno);
    return d;
  }
  d.free_bytes = static_cast<double>(st.f_bavail) * static_cast<double>(st.f_frsize);
  d.total_bytes = static_cast<double>(st.f_blocks) * static_cast<double>(st.f_frsize);
  return d;
}

readings::HostReadings HostReader::Read() const {
  readings::HostReadings r;
  r.instance = options_.comfyui_url;
  r.gpus = ReadGpus(&r.gpu_error);
  r.disks.push_back(ReadDisk(options_.artifacts_dir, "artifacts"));
  if (!options_.comfyui_output_dir.empty())
    r.disks.push_back(ReadDisk(options_.comfyui_output_dir, "comfyui_output"));
  r.at_ms = clock_.NowMs();
  return r;
}

HostReadingsPublisher::HostReadingsPublisher(HostReader reader, std::chrono::milliseconds period)
    : reader_(std::move(reader)), period_(period), thread_([this] { Loop(); }) {}

HostReadingsPublisher::~HostReadingsPublisher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void HostReadingsPublisher::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    std::string doc = reader_.Read().ToJson().dump();
    lock.lock();
    latest_ = std::move(doc);
    cv_.wait_for(lock, period_, [this] { return stop_; });
  }
}

std::string HostReadingsPublisher::Latest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return latest_;
}

Status HostReadingsPublisher::Publish(redis::Client& client, const std::string& worker_id) {
  const std::string doc = Latest();
  if (doc.empty()) return Status::Ok();
  auto r = client.Command({"HSET", queue::WorkerKey(worker_id), readings::kField, doc});
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Internal("HSET readings: " + r->str);
  return Status::Ok();
}

std::unique_ptr<HostReadingsPublisher> StartHostReadings(const WorkerOptions& options,
                                                         const Clock& clock) {
  // A source may take up to a heartbeat (at most 5 s) before it counts as down.
  const auto timeout =
      std::min<std::chrono::milliseconds>(options.heartbeat(), std::chrono::milliseconds(5000));
  return std::make_unique<HostReadingsPublisher>(
      HostReader(options, GpuSources::Real(options, timeout), clock), options.heartbeat());
}

}  // namespace scenefarm::worker
