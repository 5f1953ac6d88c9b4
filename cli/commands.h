// scenefarm CLI subcommands. Exit codes: 0 success, 1 failure, 2 usage error (or, for validate,
// a contract violation).
#pragma once

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>

#include <nlohmann/json.hpp>

#include "scenefarm/clock.h"
#include "scenefarm/queue.h"
#include "scenefarm/redis.h"

namespace scenefarm::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

struct Global {
  std::string redis_url = "redis://127.0.0.1:6379/0";
  std::string queue = "scenes";
  bool json = false;
};

// Each Register* adds a subcommand whose callback stores its exit code in *exit_code.
void RegisterEnqueue(CLI::App& app, Global& g, int* exit_code);
void RegisterStatus(CLI::App& app, Global& g, int* exit_code);
void RegisterJobs(CLI::App& app, Global& g, int* exit_code);
void RegisterValidate(CLI::App& app, Global& g, int* exit_code);
void RegisterControl(CLI::App& app, Global& g, int* exit_code);
void RegisterRepair(CLI::App& app, Global& g, int* exit_code);
void RegisterHealth(CLI::App& app, Global& g, int* exit_code);
void RegisterReport(CLI::App& app, Global& g, int* exit_code);
void RegisterWatch(CLI::App& app, Global& g, int* exit_code);
void RegisterRerun(CLI::App& app, Global& g, int* exit_code);
void RegisterDocStorage(CLI::App& app, Global& g, int* exit_code);

// Free space of a directory's filesystem: {"path", "free_bytes", "free_ratio", "pressure"} or
// {"path", "error"} (repair.cpp; also used by health).
nlohmann::json DiskReport(const std::string& path);
// The `limit` freshest worker heartbeats, in one pipelined round trip after the ZREVRANGE:
// [{"id", "busy", "scene", "host", "heartbeat_age_seconds", "paused_queues"}] (status.cpp; also
// used by watch).
nlohmann::json WorkerList(redis::Client& c, int64_t now_ms, size_t limit);

// Who an operator's action is recorded as: "cli:$USER" (control.cpp).
std::string CliActor();
// "30s", "15m", "12h", "7d".
Result<std::chrono::milliseconds> ParseDuration(const std::string& s);

// One line on stderr: "scenefarm: <what>". Returns kExitFailure.
int Fail(const std::string& what);
redis::Options RedisOptions(const Global& g);

// The queue named by --queue over a connection from --redis-url, with the system clock.
struct QueueHandle {
  explicit QueueHandle(const Global& g, int default_retry_budget = 1);
  redis::Client client;
  SystemClock clock;
  queue::Queue queue;
};

}  // namespace scenefarm::cli
