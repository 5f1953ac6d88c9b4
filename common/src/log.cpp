#include "scenefarm/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <mutex>

namespace scenefarm::log {
namespace {

std::mutex g_mu;
std::string g_component = "scenefarm";
std::atomic<int> g_min_level{static_cast<int>(Level::kInfo)};

std::shared_ptr<spdlog::logger> Logger() {
  // spdlog's stderr sink with a bare pattern: spdlog supplies thread-safe, unbuffered output,
  // the JSON line is ours.
  static std::shared_ptr<spdlog::logger> logger = [] {
    auto l = spdlog::stderr_logger_mt("scenefarm-json");
    l->set_pattern("%v");
    l->set_level(spdlog::level::trace);
    return l;
  }();
  return logger;
}

std::string NowIso8601() {
  const auto now = std::chrono::system_clock::now();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

const char* LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

}  // namespace

void Init(std::string_view component, std::string_view level) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_component = std::string(component);
  Level l = Level::kInfo;
  if (level == "debug") l = Level::kDebug;
  if (level == "warn") l = Level::kWarn;
  if (level == "error") l = Level::kError;
  g_min_level = static_cast<int>(l);
}

void Write(Level level, std::string_view event, Fields fields) {
  if (static_cast<int>(level) < g_min_level.load()) return;
  nlohmann::ordered_json line;
  line["ts"] = NowIso8601();
  line["level"] = LevelName(level);
  {
    std::lock_guard<std::mutex> lock(g_mu);
    line["component"] = g_component;
  }
  line["event"] = std::string(event);
  for (const auto& [key, value] : fields)
    line[std::string(key)] = value;
  Logger()->info(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

std::string RedactUrl(std::string_view url) {
  const auto scheme = url.find("://");
  const auto start = scheme == std::string_view::npos ? 0 : scheme + 3;
  const auto at = url.find('@', start);
  if (at == std::string_view::npos) return std::string(url);
  const auto colon = url.find(':', start);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

}  // namespace scenefarm::log
