// scenefarm-idle-farm (issue #14 P8): what N idle workers cost Redis, through the real queue code.
// Each simulated worker does, at the worker's default periods, what an idle scenefarm-worker
// does (worker/worker.cpp): every heartbeat period a Queue::Heartbeat per queue with no leases,
// the first queue's writing the worker's hash (heartbeat_at, its host readings, the TTL) in the
// same call, and a Queue::ReclaimIfDue per queue (the main loop's reclaim, which the farm takes
// in turns: --reclaim-every-worker runs Queue::Reclaim for every worker instead, as workers did
// before the turns). Options add the idle loop's wake-up: --idle-lease-seconds S, one
// Queue::Lease per worker every S seconds (the idle poll before P7), and --wake-timeout-seconds
// T, one BLPOP on sf:{Q}:wake per worker every T seconds (the blocking wake-up of issue #14 P7).
// The workers are spread over --connections connections (one thread each); the blocking calls
// are spread over them as calls of a shorter timeout, so that a connection answers for many
// workers (the per-call cost to Redis, command and timeout, is the same). After a warm-up it
// measures Redis's INFO cpu and commandstats over --seconds and prints one JSON object. A
// benchmark tool (bench/bench.py), not a product binary.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "scenefarm/clock.h"
#include "scenefarm/queue.h"
#include "scenefarm/redis.h"

namespace {

using namespace scenefarm;
using SteadyClock = std::chrono::steady_clock;

struct Args {
  std::string url = "redis://127.0.0.1:6379/0";
  int workers = 10000;
  int queues = 1;
  int connections = 16;
  double heartbeat_seconds = 5;  // WorkerOptions' default
  double lease_seconds = 30;     // WorkerOptions' default
  double idle_lease_seconds = 0;
  double wake_timeout_seconds = 0;
  bool reclaim_every_worker = false;
  double warmup_seconds = 5;
  double seconds = 20;
};

// INFO's "k:v" lines of one section.
std::map<std::string, std::string> Info(redis::Client& c, const std::string& section) {
  std::map<std::string, std::string> out;
  auto r = c.Command({"INFO", section});
  if (!r.ok()) return out;
  const std::string& s = r->str;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t end = s.find("\r\n", pos);
    if (end == std::string::npos) end = s.size();
    const std::string line = s.substr(pos, end - pos);
    pos = end + 2;
    const size_t colon = line.find(':');
    if (colon != std::string::npos && line[0] != '#')
      out[line.substr(0, colon)] = line.substr(colon + 1);
  }
  return out;
}

double CpuSeconds(redis::Client& c) {
  auto cpu = Info(c, "cpu");
  return std::stod(cpu["used_cpu_sys"]) + std::stod(cpu["used_cpu_user"]);
}

// cmdstat_<name>: calls=N,usec=U,... -> name -> (calls, usec)
std::map<std::string, std::pair<double, double>> CommandStats(redis::Client& c) {
  std::map<std::string, std::pair<double, double>> out;
  for (const auto& [k, v] : Info(c, "commandstats")) {
    if (k.rfind("cmdstat_", 0) != 0) continue;
    double calls = 0, usec = 0;
    std::sscanf(v.c_str(), "calls=%lf,usec=%lf", &calls, &usec);
    out[k.substr(8)] = {calls, usec};
  }
  return out;
}

const char* kReadings =
    R"({"at":0,"instance":"http://127.0.0.1:8188","gpus":[{"index":"0","uuid":"GPU-00000000-0000-0000-0000-000000000000","name":"NVIDIA GeForce RTX 4090","source":"nvml","free_bytes":2.0e10,"total_bytes":2.4e10,"temperature_celsius":41,"utilization_ratio":0,"power_watts":30}],"disks":[{"path":"/srv/artifacts","role":"artifacts","free_bytes":5.0e11,"total_bytes":1.0e12},{"path":"/srv/comfyui/output","role":"comfyui_output","free_bytes":5.0e11,"total_bytes":1.0e12}]})";

// One connection's share of the workers, each on its schedule.
void BeatLoop(const Args& a, int first, int count, const std::atomic<bool>& stop,
              std::atomic<int64_t>& errors) {
  redis::Options ro;
  ro.url = a.url;
  redis::Client client(ro);
  SystemClock clock;
  std::vector<queue::Queue> queues;
  for (int q = 0; q < a.queues; ++q) {
    queue::QueueOptions qo;
    qo.name = "idle" + std::to_string(q);
    queues.emplace_back(client, qo, clock);
  }
  const auto beat = std::chrono::duration_cast<SteadyClock::duration>(
      std::chrono::duration<double>(a.heartbeat_seconds));
  const auto poll = std::chrono::duration_cast<SteadyClock::duration>(
      std::chrono::duration<double>(a.idle_lease_seconds));
  const auto lease = std::chrono::milliseconds(static_cast<int64_t>(a.lease_seconds * 1000));
  const int64_t ttl = static_cast<int64_t>(a.lease_seconds * 3) + 1;
  // Spread the workers' phases over the period, as independent processes would be.
  std::vector<SteadyClock::time_point> next_beat(count), next_poll(count);
  const auto t0 = SteadyClock::now();
  for (int i = 0; i < count; ++i) {
    next_beat[i] = t0 + beat / count * i;
    next_poll[i] = t0 + poll / count * i;
  }
  while (!stop) {
    auto now = SteadyClock::now();
    auto soonest = now + std::chrono::milliseconds(50);
    for (int i = 0; i < count && !stop; ++i) {
      const std::string id = "sim-" + std::to_string(first + i);
      if (now >= next_beat[i]) {
        queue::WorkerBeat hash{ttl, clock.NowMs(), kReadings};
        for (auto& q : queues) {
          if (!q.Heartbeat(id, lease, {}, &q == &queues.front() ? &hash : nullptr).ok()) ++errors;
          if (a.reclaim_every_worker
                  ? !q.Reclaim().ok()
                  : !q.ReclaimIfDue(id, std::chrono::duration_cast<std::chrono::milliseconds>(beat))
                         .ok())
            ++errors;
        }
        next_beat[i] += beat;
        now = SteadyClock::now();
      }
      soonest = std::min(soonest, next_beat[i]);
      if (a.idle_lease_seconds > 0) {
        if (now >= next_poll[i]) {
          for (auto& q : queues) {
            if (!q.Lease(id, lease).ok()) ++errors;
          }
          next_poll[i] += poll;
          now = SteadyClock::now();
        }
        soonest = std::min(soonest, next_poll[i]);
      }
    }
    std::this_thread::sleep_until(soonest);
  }
}

// Blocking wake-ups: workers/T calls per second in all, each a BLPOP that times out.
void WakeLoop(const Args& a, int conn, int conns, const std::atomic<bool>& stop,
              std::atomic<int64_t>& errors, std::atomic<int64_t>& calls) {
  redis::Options ro;
  ro.url = a.url;
  ro.command_timeout = std::chrono::milliseconds(10000);
  redis::Client client(ro);
  const double per_conn_rate = a.workers / a.wake_timeout_seconds / conns;  // calls per second
  const double timeout = std::max(0.001, 1.0 / per_conn_rate);
  char t[32];
  std::snprintf(t, sizeof(t), "%.3f", timeout);
  const std::string key = "sf:{idle" + std::to_string(conn % a.queues) + "}:wake";
  while (!stop) {
    auto r = client.Command({"BLPOP", key, t});
    if (!r.ok() || r->is_error()) ++errors;
    ++calls;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"scenefarm-idle-farm: Redis CPU spent on N idle workers (benchmark tool)"};
  app.add_option("--redis-url", a.url);
  app.add_option("--workers", a.workers)->check(CLI::PositiveNumber);
  app.add_option("--queues", a.queues)->check(CLI::PositiveNumber);
  app.add_option("--connections", a.connections)->check(CLI::PositiveNumber);
  app.add_option("--heartbeat-seconds", a.heartbeat_seconds)->check(CLI::PositiveNumber);
  app.add_option("--lease-seconds", a.lease_seconds)->check(CLI::PositiveNumber);
  app.add_option("--idle-lease-seconds", a.idle_lease_seconds,
                 "one Lease per worker this often (0: none)");
  app.add_option("--wake-timeout-seconds", a.wake_timeout_seconds,
                 "one BLPOP sf:{Q}:wake per worker this often (0: none)");
  app.add_flag("--reclaim-every-worker", a.reclaim_every_worker,
               "every worker reclaims every period (before the turns of Queue::ReclaimIfDue)");
  app.add_option("--warmup-seconds", a.warmup_seconds);
  app.add_option("--seconds", a.seconds)->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  a.connections = std::min(a.connections, a.workers);

  redis::Options ro;
  ro.url = a.url;
  redis::Client probe(ro);
  if (Status s = probe.Connect(); !s.ok()) {
    std::fprintf(stderr, "scenefarm-idle-farm: %s\n", s.ToString().c_str());
    return 1;
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> errors{0}, wake_calls{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < a.connections; ++c) {
    const int first = static_cast<int>(static_cast<int64_t>(a.workers) * c / a.connections);
    const int last = static_cast<int>(static_cast<int64_t>(a.workers) * (c + 1) / a.connections);
    threads.emplace_back([&, first, last] { BeatLoop(a, first, last - first, stop, errors); });
    if (a.wake_timeout_seconds > 0)
      threads.emplace_back([&, c] { WakeLoop(a, c, a.connections, stop, errors, wake_calls); });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(a.warmup_seconds));
  const double cpu0 = CpuSeconds(probe);
  const auto stats0 = CommandStats(probe);
  const int64_t wake0 = wake_calls;
  const auto t0 = SteadyClock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(a.seconds));
  const double cpu1 = CpuSeconds(probe);
  const auto stats1 = CommandStats(probe);
  const int64_t wake1 = wake_calls;
  const double secs = std::chrono::duration<double>(SteadyClock::now() - t0).count();
  stop = true;
  for (auto& t : threads)
    t.join();

  nlohmann::json cmds = nlohmann::json::object();
  double total_calls = 0;
  for (const auto& [name, v] : stats1) {
    auto it = stats0.find(name);
    const double calls = v.first - (it == stats0.end() ? 0 : it->second.first);
    const double usec = v.second - (it == stats0.end() ? 0 : it->second.second);
    if (calls <= 0 || name == "info") continue;
    total_calls += calls;
    cmds[name] = {{"calls_per_s", calls / secs}, {"usec_per_call", usec / calls}};
  }
  nlohmann::json out = {{"workers", a.workers},
                        {"queues", a.queues},
                        {"connections", a.connections},
                        {"heartbeat_seconds", a.heartbeat_seconds},
                        {"idle_lease_seconds", a.idle_lease_seconds},
                        {"wake_timeout_seconds", a.wake_timeout_seconds},
                        {"reclaim_every_worker", a.reclaim_every_worker},
                        {"seconds", secs},
                        {"redis_cpu_s_per_s", (cpu1 - cpu0) / secs},
                        {"commands_per_s", total_calls / secs},
                        {"commands_per_worker_per_s", total_calls / secs / a.workers},
                        {"wake_calls_per_s", static_cast<double>(wake1 - wake0) / secs},
                        {"errors", errors.load()},
                        {"commandstats", cmds}};
  std::printf("%s\n", out.dump().c_str());
  return errors > 0 ? 2 : 0;
}
