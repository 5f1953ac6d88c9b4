// scenefarm health: Redis, each ComfyUI, the LLM, the artifacts disk, the exporter; one line each
// (ok / warn / fail). Exit 0 when nothing fails (warnings included), 1 when a check fails: for a
// cron job, a systemd timer or a container healthcheck.
//   --only redis,comfyui,llm,disk,exporter  runs just those checks (no empty arguments needed:
//                                           container runtimes drop them on the way)
//   --down-seconds N                         liveness of each ComfyUI: it fails only when it has
//                                           answered no /system_stats for N seconds, probed
//                                           every --probe-interval-seconds; VRAM never fails it
//                                           (comfyui-health@.service restarts on that failure)
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <set>
#include <thread>

#include "commands.h"
#include "scenefarm/gpu.h"
#include "scenefarm/http_client.h"
#include "scenefarm/log.h"
#include "scenefarm/options.h"

namespace scenefarm::cli {
using json = nlohmann::json;

namespace {

struct Check {
  std::string name, target, level, detail;
};

struct HealthOptions {
  std::string comfyui = "http://127.0.0.1:8188", llm, artifacts = "./artifacts", exporter;
  std::vector<std::string> only;  // empty: every check that has a target
  double timeout = 5;
  double down_seconds = 0;  // 0: one probe per ComfyUI, VRAM thresholds apply
  double probe_interval = 1;

  bool Wants(const std::string& check) const {
    return only.empty() || std::find(only.begin(), only.end(), check) != only.end();
  }
  std::chrono::milliseconds Timeout() const {
    return std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000));
  }
};

using SteadyTime = std::chrono::steady_clock::time_point;

double MsSince(SteadyTime t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string Ms(double ms) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.1f ms", ms);
  return b;
}

Check CheckRedis(const Global& g, std::chrono::milliseconds to) {
  auto ro = RedisOptions(g);
  ro.connect_timeout = to;
  ro.command_timeout = to;
  redis::Client c(ro);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.Command({"PING"});
  const bool ok = r.ok() && !r->is_error();
  return {"redis", log::RedactUrl(g.redis_url), ok ? "ok" : "fail",
          ok ? "PONG in " + Ms(MsSince(t0)) : (r.ok() ? r->str : r.status().message())};
}

// One answer of /system_stats judged: the seeds' VRAM thresholds (free < 3000 MB warning,
// < 1000 MB critical) apply unless liveness only is asked (then at most a warning).
Check JudgeSystemStats(const std::string& url, const std::string& body, bool liveness,
                       const std::string& answered) {
  const auto devices = gpu::FromSystemStats(json::parse(body, nullptr, false));
  std::string level = "ok", detail = answered;
  for (const auto& d : devices) {
    if (!d.free_mb || d.type == "cpu") continue;
    if (*d.free_mb < 1000 && !liveness)
      level = "fail";
    else if (*d.free_mb < 3000 && level == "ok")
      level = "warn";
    detail += "; " + d.name + " " + std::to_string(static_cast<int64_t>(*d.free_mb)) + " MiB free";
  }
  return {"comfyui", url, level, detail};
}

// Probes /system_stats until it answers 200 or o.down_seconds have passed since the first
// probe (one probe when down_seconds is 0).
Check CheckComfyUi(const std::string& url, const HealthOptions& o) {
  http::Client c(url, {o.Timeout(), o.Timeout()});
  const bool liveness = o.down_seconds > 0;
  const auto first = std::chrono::steady_clock::now();
  const auto deadline =
      first + std::chrono::milliseconds(static_cast<int64_t>(o.down_seconds * 1000));
  const auto interval = std::chrono::milliseconds(static_cast<int64_t>(o.probe_interval * 1000));
  for (int failed = 0;; ++failed) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = c.Get("/system_stats");
    if (r.ok() && r->status == 200) {
      std::string answered = "answered in " + Ms(MsSince(t0));
      if (failed > 0) answered += " after " + std::to_string(failed) + " failed probe(s)";
      return JudgeSystemStats(url, r->body, liveness, answered);
    }
    const std::string why = r.ok() ? "HTTP " + std::to_string(r->status) : r.status().message();
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      if (!liveness) return {"comfyui", url, "fail", why};
      const auto down_s = static_cast<int64_t>(MsSince(first) / 1000);
      return {"comfyui", url, "fail",
              "no /system_stats answer for " + std::to_string(down_s) + " s (" +
                  std::to_string(failed + 1) + " probes); last: " + why};
    }
    std::this_thread::sleep_for(
        std::min(interval, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now)));
  }
}

Check CheckLlm(const std::string& url, std::chrono::milliseconds to) {
  std::string base = url;
  const std::string suffix = "/v1/models";
  if (base.size() > suffix.size() &&
      base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0)
    base.resize(base.size() - suffix.size());
  http::Client c(base, {to, to});
  const auto t0 = std::chrono::steady_clock::now();
  auto r = c.Get("/v1/models");
  json body = r.ok() && r->status == 200 ? json::parse(r->body, nullptr, false) : json();
  const bool ok = body.is_object() && body.contains("data") && body["data"].is_array();
  return {"llm", base, ok ? "ok" : "fail",
          ok ? std::to_string(body["data"].size()) + " model(s) in " + Ms(MsSince(t0))
             : (r.ok() ? "HTTP " + std::to_string(r->status) : r.status().message())};
}

Check CheckDisk(const std::string& path) {
  json d = DiskReport(path);
  if (d.contains("error")) return {"disk", path, "warn", "not found (created by the first scene)"};
  const double ratio = d["free_ratio"];
  const std::string level = ratio < 0.05 ? "fail" : d["pressure"].get<bool>() ? "warn" : "ok";
  return {"disk", path, level,
          std::to_string(static_cast<int64_t>(d["free_bytes"].get<double>() / (1 << 20))) +
              " MiB free (" + std::to_string(static_cast<int>(ratio * 100)) + " %)"};
}

Check CheckExporter(const std::string& url, std::chrono::milliseconds to) {
  http::Client c(url, {to, to});
  auto r = c.Get("/readyz");
  const bool ok = r.ok() && r->status == 200;
  return {"exporter", url, ok ? "ok" : "fail",
          r.ok() ? "/readyz HTTP " + std::to_string(r->status) : r.status().message()};
}

// A check named in --only that has nothing to check is a usage error, not a silent pass.
std::string MissingTarget(const HealthOptions& o) {
  if (o.only.empty()) return "";
  if (o.Wants("comfyui") && SplitList(o.comfyui).empty())
    return "--only comfyui needs --comfyui-url";
  if (o.Wants("llm") && o.llm.empty()) return "--only llm needs --llm-url";
  if (o.Wants("exporter") && o.exporter.empty()) return "--only exporter needs --exporter-url";
  return "";
}

std::vector<Check> RunChecks(const Global& g, const HealthOptions& o) {
  std::vector<Check> checks;
  if (o.Wants("redis")) checks.push_back(CheckRedis(g, o.Timeout()));
  if (o.Wants("comfyui")) {
    for (const auto& url : SplitList(o.comfyui))
      checks.push_back(CheckComfyUi(url, o));
  }
  if (o.Wants("llm") && !o.llm.empty()) checks.push_back(CheckLlm(o.llm, o.Timeout()));
  if (o.Wants("disk")) checks.push_back(CheckDisk(o.artifacts));
  if (o.Wants("exporter") && !o.exporter.empty())
    checks.push_back(CheckExporter(o.exporter, o.Timeout()));
  return checks;
}

int Report(const std::vector<Check>& checks, bool as_json) {
  bool failed = false;
  json out = json::array();
  for (const auto& c : checks) {
    failed = failed || c.level == "fail";
    out.push_back(
        {{"check", c.name}, {"target", c.target}, {"level", c.level}, {"detail", c.detail}});
    if (!as_json) {
      std::printf("%-5s %-9s %s: %s\n", c.level.c_str(), c.name.c_str(), c.target.c_str(),
                  c.detail.c_str());
    }
  }
  if (as_json) std::cout << json{{"healthy", !failed}, {"checks", out}}.dump() << "\n";
  return failed ? kExitFailure : kExitOk;
}

void AddHealthOptions(CLI::App* cmd, Global& g, HealthOptions* o) {
  cmd->add_option("--only", o->only, "comma-separated checks to run (default: all)")
      ->delimiter(',')
      ->check(CLI::IsMember({"redis", "comfyui", "llm", "disk", "exporter"}));
  cmd->add_option("--comfyui-url", o->comfyui, "comma-separated; '' for none")
      ->envname("SCENEFARM_COMFYUI_URL");
  cmd->add_option("--llm-url", o->llm)->envname("SCENEFARM_LLM_URL");
  cmd->add_option("--artifacts-dir", o->artifacts)->envname("SCENEFARM_ARTIFACTS_DIR");
  cmd->add_option("--exporter-url", o->exporter, "e.g. http://127.0.0.1:9870");
  cmd->add_option("--timeout-seconds", o->timeout, "per request")->check(CLI::PositiveNumber);
  cmd->add_option("--down-seconds", o->down_seconds,
                  "ComfyUI liveness: fail only after this long without a /system_stats answer")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--probe-interval-seconds", o->probe_interval, "with --down-seconds")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--json", g.json, "print JSON");
}

}  // namespace

void RegisterHealth(CLI::App& app, Global& g, int* exit_code) {
  auto* cmd = app.add_subcommand("health",
                                 "check Redis, ComfyUI, the LLM, disk and the exporter "
                                 "(exit 1 when a check fails)");
  auto o = std::make_shared<HealthOptions>();
  AddHealthOptions(cmd, g, o.get());
  cmd->callback([&g, o, exit_code] {
    if (o->llm.empty()) {
      if (const char* u = std::getenv("LOCAL_LLM_HEALTHCHECK_URL"); u && *u) o->llm = u;
    }
    if (const std::string missing = MissingTarget(*o); !missing.empty()) {
      *exit_code = kExitUsage;
      std::cerr << "scenefarm: health: " << missing << "\n";
      return;
    }
    *exit_code = Report(RunChecks(g, *o), g.json);
  });
}

}  // namespace scenefarm::cli
