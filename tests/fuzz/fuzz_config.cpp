// What an operator writes: the exporter's web config (--web.config.file, YAML), an
// "Authorization: Basic" header against it, and a Redis URL (SCENEFARM_REDIS_URL, plain or
// redis+sentinel://). A clear error or a config, never a crash or an uncaught exception.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "scenefarm/redis.h"
#include "web.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scenefarm;
  const std::string text(reinterpret_cast<const char*>(data), size);
  static const fs::path path = [] {
    std::string tmpl = (fs::temp_directory_path() / "scenefarm-fuzz-web-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    return fs::path(tmpl) / "web-config.yml";
  }();
  static const struct Cleanup {
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(path.parent_path(), ec);
    }
  } cleanup;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
  (void)exporter::LoadWebConfig(path.string());

  // The header checked against one user (a bcrypt hash of cost 4, so that a match is cheap).
  static exporter::BasicAuth auth(std::map<std::string, std::string>{
      {"fuzz", "$2b$04$48zrOh9IB8un9mY4LqIueOPhcbBTNPxtGH4HzhSdrM9VYh8BPVgTC"}});
  (void)auth.Check(text.c_str());
  (void)exporter::Base64Decode(text);

  auto url = redis::ParseRedisUrl(text);
  if (url.ok()) {  // an accepted URL has usable ports: the server's, or every sentinel's
    if (!url->sentinel() && (url->port < 1 || url->port > 65535)) std::abort();
    for (const auto& [host, port] : url->sentinels)
      if (port < 1 || port > 65535) std::abort();
  }
  return 0;
}
