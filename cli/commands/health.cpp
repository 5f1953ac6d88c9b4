// scenefarm health: Redis, each ComfyUI, the LLM, the artifacts disk, the exporter; one line each
// (ok / warn / fail). Exit 0 when nothing fails (warnings included), 1 when a check fails: for a
// cron job or a container healthcheck.
#include <chrono>
#include <cstdlib>
#include <iostream>

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

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

std::string Ms(double ms) {
  char b[32];
  std::snprintf(b, sizeof(b), "%.1f ms", ms);
  return b;
}

}  // namespace

void RegisterHealth(CLI::App& app, Global& g, int* exit_code) {
  auto* cmd = app.add_subcommand("health",
                                 "check Redis, ComfyUI, the LLM, disk and the exporter "
                                 "(exit 1 when a check fails)");
  struct Opts {
    std::string comfyui = "http://127.0.0.1:8188", llm, artifacts = "./artifacts", exporter;
    double timeout = 5;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--comfyui-url", o->comfyui, "comma-separated; '' for none")
      ->envname("SCENEFARM_COMFYUI_URL");
  cmd->add_option("--llm-url", o->llm)->envname("SCENEFARM_LLM_URL");
  cmd->add_option("--artifacts-dir", o->artifacts)->envname("SCENEFARM_ARTIFACTS_DIR");
  cmd->add_option("--exporter-url", o->exporter, "e.g. http://127.0.0.1:9870");
  cmd->add_option("--timeout-seconds", o->timeout);
  cmd->add_flag("--json", g.json, "print JSON");
  cmd->callback([&g, o, exit_code] {
    if (o->llm.empty()) {
      if (const char* u = std::getenv("LOCAL_LLM_HEALTHCHECK_URL"); u && *u) o->llm = u;
    }
    const auto to = std::chrono::milliseconds(static_cast<int64_t>(o->timeout * 1000));
    std::vector<Check> checks;
    {
      auto ro = RedisOptions(g);
      ro.connect_timeout = to;
      ro.command_timeout = to;
      redis::Client c(ro);
      const auto t0 = std::chrono::steady_clock::now();
      auto r = c.Command({"PING"});
      const bool ok = r.ok() && !r->is_error();
      checks.push_back(
          {"redis", log::RedactUrl(g.redis_url), ok ? "ok" : "fail",
           ok ? "PONG in " + Ms(MsSince(t0)) : (r.ok() ? r->str : r.status().message())});
    }
    for (const auto& url : SplitList(o->comfyui)) {
      http::Client c(url, {to, to});
      const auto t0 = std::chrono::steady_clock::now();
      auto r = c.Get("/system_stats");
      if (!r.ok() || r->status != 200) {
        checks.push_back({"comfyui", url, "fail",
                          r.ok() ? "HTTP " + std::to_string(r->status) : r.status().message()});
        continue;
      }
      const auto devices = gpu::FromSystemStats(json::parse(r->body, nullptr, false));
      std::string level = "ok", detail = "answered in " + Ms(MsSince(t0));
      for (const auto& d : devices) {
        if (!d.free_mb || d.type == "cpu") continue;
        // The seeds' thresholds: VRAM free < 3000 MB warning, < 1000 MB critical.
        if (*d.free_mb < 1000)
          level = "fail";
        else if (*d.free_mb < 3000 && level == "ok")
          level = "warn";
        detail +=
            "; " + d.name + " " + std::to_string(static_cast<int64_t>(*d.free_mb)) + " MiB free";
      }
      checks.push_back({"comfyui", url, level, detail});
    }
    if (!o->llm.empty()) {
      std::string base = o->llm;
      const std::string suffix = "/v1/models";
      if (base.size() > suffix.size() &&
          base.compare(base.size() - suffix.size(), suffix.size(), suffix) == 0)
        base.resize(base.size() - suffix.size());
      http::Client c(base, {to, to});
      const auto t0 = std::chrono::steady_clock::now();
      auto r = c.Get("/v1/models");
      json body = r.ok() && r->status == 200 ? json::parse(r->body, nullptr, false) : json();
      const bool ok = body.is_object() && body.contains("data") && body["data"].is_array();
      checks.push_back(
          {"llm", base, ok ? "ok" : "fail",
           ok ? std::to_string(body["data"].size()) + " model(s) in " + Ms(MsSince(t0))
              : (r.ok() ? "HTTP " + std::to_string(r->status) : r.status().message())});
    }
    {
      json d = DiskReport(o->artifacts);
      if (d.contains("error")) {
        checks.push_back({"disk", o->artifacts, "warn", "not found (created by the first scene)"});
      } else {
        const double ratio = d["free_ratio"];
        checks.push_back(
            {"disk", o->artifacts,
             ratio < 0.05                ? "fail"
             : d["pressure"].get<bool>() ? "warn"
                                         : "ok",
             std::to_string(static_cast<int64_t>(d["free_bytes"].get<double>() / (1 << 20))) +
                 " MiB free (" + std::to_string(static_cast<int>(ratio * 100)) + " %)"});
      }
    }
    if (!o->exporter.empty()) {
      http::Client c(o->exporter, {to, to});
      auto r = c.Get("/readyz");
      const bool ok = r.ok() && r->status == 200;
      checks.push_back(
          {"exporter", o->exporter, ok ? "ok" : "fail",
           r.ok() ? "/readyz HTTP " + std::to_string(r->status) : r.status().message()});
    }
    bool failed = false;
    json out = json::array();
    for (const auto& c : checks) {
      failed = failed || c.level == "fail";
      out.push_back(
          {{"check", c.name}, {"target", c.target}, {"level", c.level}, {"detail", c.detail}});
      if (!g.json) {
        std::printf("%-5s %-9s %s: %s\n", c.level.c_str(), c.name.c_str(), c.target.c_str(),
                    c.detail.c_str());
      }
    }
    if (g.json) std::cout << json{{"healthy", !failed}, {"checks", out}}.dump() << "\n";
    *exit_code = failed ? kExitFailure : kExitOk;
  });
}

}  // namespace scenefarm::cli
