#include "malloc_settings.h"

#include <malloc.h>

#include <cstdlib>
#include <cstring>

namespace scenefarm::exporter {

const std::vector<MallocSetting>& DefaultMallocSettings() {
  static const std::vector<MallocSetting> settings = {
      {M_ARENA_MAX, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max", 1},
      {M_TRIM_THRESHOLD, "MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold", 64 << 20},
      {M_MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold", 32 << 20}};
  return settings;
}

bool OperatorSetsMalloc(const MallocSetting& s, const char* env_value, const char* glibc_tunables) {
  if (env_value != nullptr && *env_value != '\0') return true;
  return glibc_tunables != nullptr && std::strstr(glibc_tunables, s.tunable) != nullptr;
}

std::string ConfigureMalloc() {
  std::string out;
  for (const auto& s : DefaultMallocSettings()) {
    std::string name = std::strchr(s.tunable, '.') + 1;
    name = name.substr(name.find('.') + 1);  // glibc.malloc.arena_max -> arena_max
    if (!out.empty()) out += ' ';
    if (OperatorSetsMalloc(s, std::getenv(s.env), std::getenv("GLIBC_TUNABLES"))) {
      out += name + "=environment";
    } else if (mallopt(s.param, s.value) == 1) {
      out += name + "=" + std::to_string(s.value);
    } else {
      out += name + "=refused";
    }
  }
  return out;
}

}  // namespace scenefarm::exporter
