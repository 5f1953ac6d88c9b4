#include "scenefarm/readings.h"

namespace scenefarm::readings {
namespace {

using json = nlohmann::json;

std::string Cut(const std::string& s) {
  return s.size() > kMaxText ? s.substr(0, kMaxText) : s;
}

void PutNumber(json& j, const char* key, const std::optional<double>& v) {
  if (v) j[key] = *v;
}

std::optional<double> GetNumber(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::string GetText(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? Cut(it->get<std::string>()) : "";
}

}  // namespace

json HostReadings::ToJson() const {
  json g = json::array();
  for (size_t i = 0; i < gpus.size() && i < kMaxGpus; ++i) {
    const Gpu& x = gpus[i];
    json e = {{"index", Cut(x.index)},
              {"uuid", Cut(x.uuid)},
              {"name", Cut(x.name)},
              {"source", Cut(x.source)}};
    PutNumber(e, "free_bytes", x.free_bytes);
    PutNumber(e, "total_bytes", x.total_bytes);
    PutNumber(e, "temperature_celsius", x.temperature_celsius);
    PutNumber(e, "utilization_ratio", x.utilization_ratio);
    PutNumber(e, "power_watts", x.power_watts);
    g.push_back(std::move(e));
  }
  json d = json::array();
  for (size_t i = 0; i < disks.size() && i < kMaxDisks; ++i) {
    const Disk& x = disks[i];
    json e = {{"path", Cut(x.path)}, {"role", Cut(x.role)}};
    PutNumber(e, "free_bytes", x.free_bytes);
    PutNumber(e, "total_bytes", x.total_bytes);
    if (!x.error.empty()) e["error"] = Cut(x.error);
    d.push_back(std::move(e));
  }
  json out = {{"at", at_ms}, {"instance", Cut(instance)}, {"gpus", g}, {"disks", d}};
  if (!gpu_error.empty()) out["gpu_error"] = Cut(gpu_error);
  return out;
}

Result<HostReadings> HostReadings::FromJson(const json& j) {
  if (!j.is_object()) return Status::InvalidArgument("readings: not a JSON object");
  HostReadings r;
  if (auto at = GetNumber(j, "at")) r.at_ms = static_cast<int64_t>(*at);
  r.instance = GetText(j, "instance");
  r.gpu_error = GetText(j, "gpu_error");
  if (auto it = j.find("gpus"); it != j.end() && it->is_array()) {
    for (const auto& e : *it) {
      if (r.gpus.size() >= kMaxGpus) break;
      if (!e.is_object()) continue;
      Gpu g;
      g.index = GetText(e, "index");
      g.uuid = GetText(e, "uuid");
      g.name = GetText(e, "name");
      g.source = GetText(e, "source");
      g.free_bytes = GetNumber(e, "free_bytes");
      g.total_bytes = GetNumber(e, "total_bytes");
      g.temperature_celsius = GetNumber(e, "temperature_celsius");
      g.utilization_ratio = GetNumber(e, "utilization_ratio");
      g.power_watts = GetNumber(e, "power_watts");
      r.gpus.push_back(std::move(g));
    }
  }
  if (auto it = j.find("disks"); it != j.end() && it->is_array()) {
    for (const auto& e : *it) {
      if (r.disks.size() >= kMaxDisks) break;
      if (!e.is_object()) continue;
      Disk d;
      d.path = GetText(e, "path");
      d.role = GetText(e, "role");
      d.free_bytes = GetNumber(e, "free_bytes");
      d.total_bytes = GetNumber(e, "total_bytes");
      d.error = GetText(e, "error");
      r.disks.push_back(std::move(d));
    }
  }
  return r;
}

Gpu FromGpuReading(const gpu::Reading& r) {
  constexpr double kMiB = 1024.0 * 1024.0;
  Gpu g;
  g.index = std::to_string(r.index);
  g.uuid = r.uuid;
  g.name = r.name;
  g.source = r.source;
  if (r.free_mb) g.free_bytes = *r.free_mb * kMiB;
  if (r.total_mb) g.total_bytes = *r.total_mb * kMiB;
  g.temperature_celsius = r.temperature_celsius;
  g.utilization_ratio = r.utilization_ratio;
  g.power_watts = r.power_watts;
  return g;
}

}  // namespace scenefarm::readings
