// Structured logs: one JSON object per line on stderr, a named event plus fields, e.g.
//   {"ts":"2026-11-23T19:43:00.123Z","level":"info","component":"worker",
//    "event":"scene_leased","scene_id":"s1","attempt":1}
// Field values are JSON values. Secrets (passwords, tokens) must never be passed as fields:
// use RedactUrl() for URLs that may carry credentials.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

namespace scenefarm::log {

enum class Level { kDebug, kInfo, kWarn, kError };

using Fields = std::initializer_list<std::pair<std::string_view, nlohmann::json>>;

// Sets the component name written on every line and the lowest level written
// ("debug", "info", "warn", "error"; anything else keeps "info"). Thread-safe.
void Init(std::string_view component, std::string_view level = "info");

void Write(Level level, std::string_view event, Fields fields);
inline void Debug(std::string_view event, Fields fields = {}) {
  Write(Level::kDebug, event, fields);
}
inline void Info(std::string_view event, Fields fields = {}) {
  Write(Level::kInfo, event, fields);
}
inline void Warn(std::string_view event, Fields fields = {}) {
  Write(Level::kWarn, event, fields);
}
inline void Error(std::string_view event, Fields fields = {}) {
  Write(Level::kError, event, fields);
}

// "redis://user:secret@host:6379/0" -> "redis://user:***@host:6379/0".
std::string RedactUrl(std::string_view url);

}  // namespace scenefarm::log
