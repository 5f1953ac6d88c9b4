// scenefarm report --prometheus URL [--week-start DATE] [--range 7d] [--out DIR]: the weekly
// sweep of seed 000 from Prometheus' HTTP API, this window against the one before it, written as
// report.json and report.md. Exit 1 when a regression criterion holds.
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "scenefarm/http_client.h"
#include "scenefarm/telemetry.h"

namespace scenefarm::cli {
namespace {

using json = nlohmann::json;

// One instant query at `at` (unix seconds): the first sample's value, NaN for no data; a
// vector query gives label -> value in *by (keyed by `label`).
Result<double> Scalar(http::Client& c, const std::string& expr, double at,
                      std::vector<std::pair<std::string, double>>* by = nullptr,
                      const std::string& label = "") {
  char t[32];
  std::snprintf(t, sizeof(t), "%.3f", at);
  auto r = c.Get("/api/v1/query?query=" + http::UrlEncode(expr) + "&time=" + t);
  if (!r.ok()) return r.status();
  json j = json::parse(r->body, nullptr, false);
  if (!j.is_object() || j.value("status", "") != "success") {
    return Status::Unavailable("Prometheus query failed (HTTP " + std::to_string(r->status) +
                               "): " + expr + ": " +
                               (j.is_object() ? j.value("error", "") : r->body.substr(0, 200)));
  }
  double first = std::nan("");
  for (const auto& s : j["data"]["result"]) {
    const double v = std::stod(s["value"][1].get<std::string>());
    if (std::isnan(first)) first = v;
    if (by) by->emplace_back(s["metric"].value(label, ""), v);
  }
  return first;
}

json Num(double v) {
  return std::isnan(v) || std::isinf(v) ? json(nullptr) : json(v);
}

struct Window {
  double scenes = NAN, succeeded = NAN, dead = NAN, runs = NAN, success_rate = NAN, p95 = NAN,
         forced_copy_rate = NAN, frames_avg = NAN, frames_min_le = NAN, short_scenes = NAN;
  std::vector<std::pair<std::string, double>> fallbacks;
  json ToJson() const {
    json f = json::object();
    for (const auto& [k, v] : fallbacks)
      if (v > 0) f[k] = v;
    return {{"scenes_finished", Num(scenes)},
            {"succeeded", Num(succeeded)},
            {"dead_lettered", Num(dead)},
            {"runs_completed", Num(runs)},
            {"success_rate", Num(success_rate)},
            {"p95_render_seconds", Num(p95)},
            {"forced_copy_rate", Num(forced_copy_rate)},
            {"frames_avg", Num(frames_avg)},
            {"frames_min_at_most", Num(frames_min_le)},
            {"scenes_under_22_frames", Num(short_scenes)},
            {"fallback_notes", f}};
  }
};

Result<Window> Sweep(http::Client& c, double end, const std::string& range) {
  Window w;
  auto q = [&](const std::string& e, double* out) -> Status {
    auto r = Scalar(c, e, end);
    if (!r.ok()) return r.status();
    *out = *r;
    return Status::Ok();
  };
  const std::string inc = "[" + range + "]";
  for (auto [expr, out] : std::vector<std::pair<std::string, double*>>{
           {"sum(increase(scenefarm_scenes_total{outcome=\"succeeded\"}" + inc + "))",
            &w.succeeded},
           {"sum(increase(scenefarm_scenes_total{outcome=\"dead_lettered\"}" + inc + "))", &w.dead},
           {"sum(increase(scenefarm_runs_completed_total" + inc + "))", &w.runs},
           {"histogram_quantile(0.95, sum by (le) "
            "(increase(scenefarm_scene_duration_seconds_bucket" +
                inc + ")))",
            &w.p95},
           {"sum(increase(scenefarm_scene_completions_total{method=\"forced_copy\"}" + inc +
                ")) / sum(increase(scenefarm_scene_completions_total" + inc + "))",
            &w.forced_copy_rate},
           {"sum(increase(scenefarm_scene_frames_sum" + inc +
                ")) / sum(increase(scenefarm_scene_frames_count" + inc + "))",
            &w.frames_avg},
           {"sum(increase(scenefarm_scene_frames_bucket{le=\"21\"}" + inc + "))",
            &w.short_scenes}}) {
    if (Status s = q(expr, out); !s.ok()) return s;
  }
  w.scenes = w.succeeded + w.dead;
  w.success_rate = w.scenes > 0 ? w.succeeded / w.scenes : NAN;
  // The smallest bucket that holds a scene: the minimum frame count is at most its bound.
  std::vector<std::pair<std::string, double>> buckets;
  auto b = Scalar(c, "sum by (le) (increase(scenefarm_scene_frames_bucket" + inc + "))", end,
                  &buckets, "le");
  if (!b.ok()) return b.status();
  for (const auto& [le, v] : buckets) {
    if (v > 0 && le != "+Inf") {
      const double bound = std::stod(le);
      if (std::isnan(w.frames_min_le) || bound < w.frames_min_le) w.frames_min_le = bound;
    }
  }
  auto f = Scalar(c, "sum by (reason) (increase(scenefarm_scene_fallbacks_total" + inc + "))", end,
                  &w.fallbacks, "reason");
  if (!f.ok()) return f.status();
  std::sort(w.fallbacks.begin(), w.fallbacks.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  return w;
}

Result<double> ParseDate(const std::string& s) {
  std::tm tm{};
  std::istringstream in(s);
  in >> std::get_time(&tm, "%Y-%m-%d");
  if (in.fail()) return Status::InvalidArgument("--week-start '" + s + "': YYYY-MM-DD");
  return static_cast<double>(timegm(&tm));
}

}  // namespace

void RegisterReport(CLI::App& app, Global& g, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "report",
      "the weekly sweep from Prometheus, against the week before (exit 1 on a regression)");
  struct Opts {
    std::string prometheus, week_start, range = "7d", out = ".";
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--prometheus", o->prometheus, "Prometheus base URL")->required();
  cmd->add_option("--week-start", o->week_start,
                  "YYYY-MM-DD (UTC); default: the window ending now");
  cmd->add_option("--range", o->range, "window length (7d; 1h for a quick look)")
      ->capture_default_str();
  cmd->add_option("--out", o->out, "directory for report.json and report.md")
      ->capture_default_str();
  cmd->add_flag("--json", g.json, "print report.json too");
  cmd->callback([&g, o, exit_code] {
    auto range = ParseDuration(o->range);
    if (!range.ok()) {
      *exit_code = kExitUsage;
      std::cerr << "scenefarm: report: " << range.status().message() << "\n";
      return;
    }
    const double span = range->count() / 1000.0;
    double end = static_cast<double>(std::time(nullptr));
    if (!o->week_start.empty()) {
      auto start = ParseDate(o->week_start);
      if (!start.ok()) {
        *exit_code = kExitUsage;
        std::cerr << "scenefarm: report: " << start.status().message() << "\n";
        return;
      }
      end = *start + span;
    }
    http::Client c(o->prometheus,
                   {std::chrono::milliseconds(5000), std::chrono::milliseconds(30000)});
    auto cur = Sweep(c, end, o->range);
    auto prev = cur.ok() ? Sweep(c, end - span, o->range) : cur;
    if (!cur.ok() || !prev.ok()) {
      *exit_code = Fail("report: " + (cur.ok() ? prev.status() : cur.status()).message());
      return;
    }
    // Seed 000's regression criteria.
    json criteria = json::array();
    auto add = [&](const char* name, bool holds, const std::string& why) {
      criteria.push_back({{"criterion", name}, {"holds", holds}, {"why", why}});
    };
    const bool frames_drop = !std::isnan(cur->frames_avg) && !std::isnan(prev->frames_avg) &&
                             cur->frames_avg < prev->frames_avg * 0.9;
    const bool new_short = cur->short_scenes > 0 && !(prev->short_scenes > 0);
    add("FrameCountRegression", frames_drop || new_short,
        "average frames down more than 10 % or scenes under 22 frames that the week before had "
        "not");
    add("ForcedCopySpike", cur->forced_copy_rate > 0.15 && !(prev->forced_copy_rate >= 0.10),
        "forced-copy rate above 15 % (was under 10 % the week before)");
    add("LatencyRegression",
        !std::isnan(cur->p95) && !std::isnan(prev->p95) && cur->p95 > prev->p95 * 1.2,
        "P95 render time up more than 20 %");
    bool regression = false;
    for (const auto& k : criteria)
      regression = regression || k["holds"].get<bool>();
    const json report = {{"window_end", telemetry::IsoTime(static_cast<int64_t>(end * 1000))},
                         {"range", o->range},
                         {"this_window", cur->ToJson()},
                         {"previous_window", prev->ToJson()},
                         {"criteria", criteria},
                         {"regression", regression}};
    std::ostringstream md;
    auto cell = [](const json& v) {
      if (v.is_null()) return std::string("n/a");
      std::ostringstream s;
      s << std::setprecision(4) << v.get<double>();
      return s.str();
    };
    md << "# scenefarm weekly sweep, window ending " << report["window_end"].get<std::string>()
       << " (" << o->range << ")\n\n| figure | this window | previous window |\n|---|---|---|\n";
    for (const auto& [k, v] : report["this_window"].items()) {
      if (k == "fallback_notes") continue;
      md << "| " << k << " | " << cell(v) << " | " << cell(report["previous_window"][k]) << " |\n";
    }
    md << "\n## Fallback notes by frequency\n";
    if (cur->fallbacks.empty() || report["this_window"]["fallback_notes"].empty()) md << "none\n";
    for (const auto& [reason, n] : cur->fallbacks)
      if (n > 0) md << "- " << reason << ": " << cell(json(n)) << "\n";
    md << "\n## Regression criteria\n";
    for (const auto& k : criteria)
      md << "- " << k["criterion"].get<std::string>() << ": "
         << (k["holds"].get<bool>() ? "**HOLDS**" : "no") << " (" << k["why"].get<std::string>()
         << ")\n";
    std::error_code ec;
    std::filesystem::create_directories(o->out, ec);
    const auto dir = std::filesystem::path(o->out);
    Status s1 = telemetry::WriteFileAtomically(dir / "report.json", report.dump(2) + "\n");
    Status s2 = telemetry::WriteFileAtomically(dir / "report.md", md.str());
    if (!s1.ok() || !s2.ok()) {
      *exit_code = Fail("report: " + (s1.ok() ? s2 : s1).message());
      return;
    }
    if (g.json) {
      std::cout << report.dump() << "\n";
    } else {
      std::cout << md.str() << "\nwritten: " << (dir / "report.json").string() << ", "
                << (dir / "report.md").string() << "\n";
    }
    *exit_code = regression ? kExitFailure : kExitOk;
  });
}

}  // namespace scenefarm::cli
