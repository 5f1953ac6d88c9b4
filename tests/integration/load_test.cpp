// R5 load (issue #15). The exporter: 50 concurrent scrapers over 1,000 workers' state, Redis
// stopped in the middle (every answer still a 200, scenefarm_redis_up 0), and the exporter's
// open fds and threads the same before and after. The workers: scenes through several
// scenefarm-worker processes with pipelining, their fds, threads and RSS at the start and the
// end. Latency percentiles and the figures are printed (docs/reliability.md records them).
//
// Size: SCENEFARM_LOAD_SCRAPES (scrapes per scraper and phase, default 20) or
// SCENEFARM_LOAD_SECONDS (each phase's length instead, `make soak`: 30, so 60 s in all);
// SCENEFARM_LOAD_SCENES (default 120; soak 1000) over SCENEFARM_LOAD_WORKERS (default 4; soak 8).
#include <dirent.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "scenefarm/http_client.h"
#include "support/chaos_farm.h"
#include "support/comfy_harness.h"
#include "support/net.h"
#include "support/queue_fixture.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

int OpenFds(pid_t pid) {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

// A field of /proc/PID/status ("Threads", "VmRSS"), as a number (kB for sizes).
long StatusField(pid_t pid, const std::string& field) {
  const std::string s = ReadFile("/proc/" + std::to_string(pid) + "/status");
  const auto pos = s.find("\n" + field + ":");
  return pos == std::string::npos ? -1 : std::atol(s.c_str() + pos + field.size() + 2);
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

bool RedisUp(const std::string& body, int value) {
  return body.find("\nscenefarm_redis_up " + std::to_string(value)) != std::string::npos;
}

TEST(Load, ExporterAnswersFiftyScrapersOverAThousandWorkersThroughARedisStop) {
  constexpr int kScrapers = 50, kWorkers = 1000;
  const int per_phase = EnvInt("SCENEFARM_LOAD_SCRAPES", 20);
  const int phase_seconds = EnvInt("SCENEFARM_LOAD_SECONDS", 0);
  TempDir dir;
  RedisServer redis;
  redis::Client client(redis.options());
  // 1,000 workers' state as their heartbeats leave it: the hash and the live set.
  SystemClock clock;
  const std::string now = std::to_string(clock.NowMs());
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < kWorkers; ++i) {
    const std::string id = "load-w" + std::to_string(i);
    cmds.push_back({"HSET", queue::WorkerKey(id), "host", "host" + std::to_string(i % 50), "pid",
                    std::to_string(1000 + i), "queues", R"(["scenes"])", "started_at", now,
                    "heartbeat_at", now, "busy", i % 3 ? "1" : "0", "scene",
                    i % 3 ? "s" + std::to_string(i) : ""});
    cmds.push_back({"ZADD", queue::kWorkersKey, now, id});
    if (cmds.size() >= 200) {
      ASSERT_TRUE(client.Pipeline(cmds).ok());
      cmds.clear();
    }
  }
  queue::Queue q(client, {}, clock);
  std::vector<Scene> scenes;
  for (int i = 0; i < 200; ++i)
    scenes.push_back(MakeScene("q" + std::to_string(i)));
  ASSERT_TRUE(q.Enqueue(scenes).ok());

  const int port = FreePort();
  Process exporter({SCENEFARM_EXPORTER_BIN, "--listen", "127.0.0.1:" + std::to_string(port),
                    "--redis-url", redis.url(), "--comfyui-url", "", "--llm-skip", "--gpu-source",
                    "none", "--worker-labels", "--timeout-seconds", "2"},
                   dir.path() / "exporter.log");
  ASSERT_TRUE(WaitFor([&] { return PortOpen(port); })) << exporter.Log();
  const std::string url = "http://127.0.0.1:" + std::to_string(port);
  {
    http::Client c(url);
    auto r = c.Get("/metrics");
    ASSERT_TRUE(r.ok() && r->status == 200);
    ASSERT_TRUE(RedisUp(r->body, 1)) << r->body.substr(0, 2000);
    EXPECT_NE(r->body.find("\nscenefarm_workers_live 1000"), std::string::npos);
  }
  const int fds_before = OpenFds(exporter.pid());
  const long threads_before = StatusField(exporter.pid(), "Threads");

  std::atomic<int> phase{0};  // 0: Redis up, 1: Redis stopped, 2: done
  std::atomic<int> errors{0}, non200{0}, down_seen{0};
  std::vector<std::vector<double>> lat(kScrapers), lat_down(kScrapers);  // Redis up / down
  std::vector<std::atomic<int>> counts(kScrapers);
  std::vector<std::string> first_error(kScrapers);
  std::vector<std::thread> threads;
  for (int t = 0; t < kScrapers; ++t) {
    threads.emplace_back([&, t] {
      http::Client c(url);
      while (phase < 2) {
        const int ph = phase;
        const auto start = std::chrono::steady_clock::now();
        auto r = c.Get("/metrics");
        (ph == 0 ? lat : lat_down)[t].push_back(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                .count());
        if (!r.ok()) {
          if (errors++ == 0) first_error[t] = r.status().ToString();
        } else if (r->status != 200) {
          ++non200;
        } else if (ph == 1 && RedisUp(r->body, 0)) {
          ++down_seen;
        }
        ++counts[t];
      }
    });
  }
  // Each phase: every scraper has done per_phase scrapes (or phase_seconds passed).
  auto run_phase = [&] {
    std::vector<int> base(kScrapers);
    for (int t = 0; t < kScrapers; ++t)
      base[t] = counts[t];
    if (phase_seconds > 0) {
      std::this_thread::sleep_for(std::chrono::seconds(phase_seconds));  // a load length
      return true;
    }
    return WaitFor(
        [&] {
          for (int t = 0; t < kScrapers; ++t)
            if (counts[t] - base[t] < per_phase) return false;
          return true;
        },
        120s);
  };
  const auto t0 = std::chrono::steady_clock::now();
  const bool phase0 = run_phase();
  redis.Stop();
  phase = 1;
  const bool phase1 = run_phase();
  phase = 2;
  for (auto& th : threads)
    th.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(phase0 && phase1) << "the scrapers stalled";
  EXPECT_EQ(errors.load(), 0) << "a scrape failed";
  EXPECT_EQ(non200.load(), 0);
  EXPECT_GT(down_seen.load(), 0) << "no scrape said scenefarm_redis_up 0 while Redis was down";

  // Redis back: the exporter reconnects; its fds and threads are what they were before.
  redis.Start();
  http::Client c(url);
  ASSERT_TRUE(WaitFor([&] {
    auto r = c.Get("/metrics");
    return r.ok() && RedisUp(r->body, 1);
  }));
  // The scrapers' connections close on the exporter's side a moment after the clients' do.
  const bool fds_back = WaitFor([&] { return OpenFds(exporter.pid()) <= fds_before; }, 15s);
  const int fds_after = OpenFds(exporter.pid());
  const long threads_after = StatusField(exporter.pid(), "Threads");
  EXPECT_TRUE(fds_back) << "fds " << fds_before << " -> " << fds_after;
  EXPECT_EQ(threads_after, threads_before);
  EXPECT_TRUE(exporter.running());

  std::vector<double> up, down;
  int total = 0;
  for (int t = 0; t < kScrapers; ++t) {
    up.insert(up.end(), lat[t].begin(), lat[t].end());
    down.insert(down.end(), lat_down[t].begin(), lat_down[t].end());
    total += counts[t];
  }
  std::printf(
      "exporter load: %d scrapers, %d scrapes in %.1f s, %d errors, %d non-200; Redis up: %zu "
      "scrapes, ms p50 %.1f p90 %.1f p99 %.1f max %.1f; Redis down: %zu scrapes (%d with "
      "redis_up 0), ms p50 %.1f p90 %.1f p99 %.1f max %.1f; fds %d -> %d, threads %ld -> %ld\n",
      kScrapers, total, seconds, errors.load(), non200.load(), up.size(), Percentile(up, 0.5),
      Percentile(up, 0.9), Percentile(up, 0.99), Percentile(up, 1.0), down.size(), down_seen.load(),
      Percentile(down, 0.5), Percentile(down, 0.9), Percentile(down, 0.99), Percentile(down, 1.0),
      fds_before, fds_after, threads_before, threads_after);
}

TEST(Load, WorkersKeepTheirFdsThreadsAndMemoryOverManyScenes) {
  const int kScenes = EnvInt("SCENEFARM_LOAD_SCENES", 120);
  const int kWorkers = EnvInt("SCENEFARM_LOAD_WORKERS", 4);
  TempDir dir;
  RedisServer redis;
  redis::Client client(redis.options());
  SystemClock clock;
  queue::Queue q(client, {}, clock);
  std::vector<Scene> scenes;
  for (int i = 0; i < kScenes; ++i) {
    Scene s = MakeScene("l" + std::to_string(i), 0, 1);
    s.run = "load";
    s.workflow = SourceWorkflow("load", 2, 5, i);
    scenes.push_back(s);
  }
  ASSERT_TRUE(q.Enqueue(scenes).ok());
  FarmOptions fo;
  fo.slots = kWorkers;
  fo.lease_seconds = 10;
  fo.heartbeat_seconds = 1;
  Farm farm(dir.path(), redis.url(), fo);
  for (int i = 0; i < kWorkers; ++i)
    farm.Start(i, "load-" + std::to_string(i));
  auto succeeded = [&] {
    auto r = client.Command({"HGET", "sf:{scenes}:stats", "succeeded"});
    return r.ok() ? r->AsInt(0) : 0;
  };
  // "Start": every worker has finished a scene (its connections, sockets and threads exist).
  ASSERT_TRUE(WaitFor(
      [&] {
        for (int i = 0; i < kWorkers; ++i)
          if (farm.Log(i).find("\"scene_rendered\"") == std::string::npos) return false;
        return true;
      },
      60s));
  struct Reading {
    int fds;
    long threads, rss_kb;
  };
  auto read = [&](int i) {
    const pid_t pid = farm.worker(i).pid();
    return Reading{OpenFds(pid), StatusField(pid, "Threads"), StatusField(pid, "VmRSS")};
  };
  std::vector<Reading> start;
  for (int i = 0; i < kWorkers; ++i)
    start.push_back(read(i));
  const int64_t done_at_start = succeeded();
  ASSERT_TRUE(WaitFor([&] { return succeeded() == kScenes; }, std::chrono::seconds(60 + kScenes)))
      << succeeded() << " of " << kScenes;
  // Idle again (nothing in flight): the same fds and threads as when busy at the start.
  for (int i = 0; i < kWorkers; ++i) {
    // A connection of the moment (a heartbeat's /system_stats) closes; a leaked one never does.
    const bool fds_back = WaitFor([&] { return read(i).fds <= start[i].fds; }, 15s);
    const Reading end = read(i);
    EXPECT_TRUE(fds_back) << "worker " << i << " fds " << start[i].fds << " -> " << end.fds;
    EXPECT_LE(end.threads, start[i].threads) << "worker " << i;
    EXPECT_LT(end.rss_kb, start[i].rss_kb * 2 + 8192) << "worker " << i;
    std::printf(
        "worker %d: fds %d -> %d, threads %ld -> %ld, RSS %ld -> %ld kB over %lld scenes%s\n", i,
        start[i].fds, end.fds, start[i].threads, end.threads, start[i].rss_kb, end.rss_kb,
        static_cast<long long>(kScenes - done_at_start),
        farm.Log(i).find("\"run_completed\"") != std::string::npos ? " (assembled the run)" : "");
    EXPECT_EQ(farm.Stop(i), 0);
  }
}

}  // namespace
}  // namespace scenefarm::testing
