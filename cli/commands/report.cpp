// scenefarm report --prometheus URL [--week-start DATE] [--range 7d] [--weeks 4] [--artifacts DIR]
// [--out DIR]: seed 000's weekly sweep from Prometheus' HTTP API -- this window against the one
// before it, and a trend over --weeks windows -- written as report.json and report.md.
// Every threshold comes from Prometheus: the scenefarm:threshold_report_* recording rules of
// alerts/scenefarm.rules.yml, the one place the alerts take theirs from. Exit 1 when a
// regression criterion holds (or Prometheus cannot answer), 2 on a usage error.
#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "commands.h"
#include "scenefarm/http_client.h"
#include "scenefarm/telemetry.h"

namespace scenefarm::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Series = std::vector<std::pair<std::string, double>>;

// One instant query at `at` (unix seconds): the first sample's value, NaN for no data; a
// vector query gives label -> value in *by (keyed by `label`).
Result<double> Scalar(http::Client& c, const std::string& expr, double at, Series* by = nullptr,
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

// The report's thresholds, as the rules file records them (seed 000's criteria).
struct Thresholds {
  double frames_min = NAN, frames_min_previous = NAN, forced_copy = NAN, forced_copy_previous = NAN,
         p95 = NAN, p95_previous = NAN, p95_escalation = NAN, forced_copy_escalation = NAN,
         llm_success = NAN;
};

Result<Thresholds> ReadThresholds(http::Client& c, double at) {
  Thresholds t;
  const std::vector<std::pair<const char*, double*>> wanted = {
      {"frames_min:frames", &t.frames_min},
      {"frames_min_previous:frames", &t.frames_min_previous},
      {"forced_copy:ratio", &t.forced_copy},
      {"forced_copy_previous:ratio", &t.forced_copy_previous},
      {"p95:seconds", &t.p95},
      {"p95_previous:seconds", &t.p95_previous},
      {"p95_escalation:ratio", &t.p95_escalation},
      {"forced_copy_escalation:ratio", &t.forced_copy_escalation},
      {"llm_success:ratio", &t.llm_success}};
  for (const auto& [name, out] : wanted) {
    const std::string series = std::string("scenefarm:threshold_report_") + name;
    auto v = Scalar(c, series, at);
    if (!v.ok()) return v.status();
    if (std::isnan(*v)) {
      return Status::FailedPrecondition("Prometheus has no " + series +
                                        ": load alerts/scenefarm.rules.yml, whose thresholds "
                                        "the report uses");
    }
    *out = *v;
  }
  return t;
}

// One window's figures. Figures read from Redis by every exporter are deduplicated (max by the
// labels that matter) before they are summed, as the rules do.
struct Window {
  double end = 0;
  double succeeded = NAN, dead = NAN, runs = NAN, p95 = NAN, forced_copy_rate = NAN,
         frames_avg = NAN, frames_min_le = NAN, frames_counted = NAN, max_wait = NAN,
         attempt_limit = NAN, llm_up_ratio = NAN, llm_latency = NAN, llm_errors = NAN;
  // Scenes with fewer frames than the report's floor (this window) and than the previous
  // window's floor, and the bucket bounds that answered each.
  double below_floor = NAN, below_previous_floor = NAN;
  double vram_delta_mb = NAN, vram_scenes = 0;  // from --artifacts
  Series fallbacks;
};

std::string Dedup(const std::string& metric, const std::string& labels, const std::string& inc) {
  return "max by (" + labels + ") (increase(" + metric + inc + "))";
}

// Scenes with at most `bound` frames: the largest histogram bound <= bound answers (frame
// counts are whole numbers; the buckets include 23 and 24 for seed 000's floor).
double ScenesAtMost(const Series& buckets, double bound) {
  double best_le = -1, n = NAN;
  for (const auto& [le, v] : buckets) {
    if (le == "+Inf") continue;
    const double b = std::stod(le);
    if (b <= bound && b > best_le) {
      best_le = b;
      n = v;
    }
  }
  return n;
}

Status SweepFrames(http::Client& c, const std::string& inc, const Thresholds& t, Window& w) {
  Series buckets;
  auto b =
      Scalar(c, "sum by (le) (" + Dedup("scenefarm_scene_frames_bucket", "queue, le", inc) + ")",
             w.end, &buckets, "le");
  if (!b.ok()) return b.status();
  // The smallest bucket that holds a scene: the minimum frame count is at most its bound.
  for (const auto& [le, v] : buckets) {
    if (le == "+Inf") {
      w.frames_counted = v;
    } else if (v > 0.5) {
      const double bound = std::stod(le);
      if (std::isnan(w.frames_min_le) || bound < w.frames_min_le) w.frames_min_le = bound;
    }
  }
  w.below_floor = ScenesAtMost(buckets, t.frames_min - 1);
  w.below_previous_floor = ScenesAtMost(buckets, t.frames_min_previous - 1);
  return Status::Ok();
}

Status SweepLlm(http::Client& c, const std::string& range, Window& w) {
  const std::string r = "[" + range + "]";
  const std::vector<std::pair<std::string, double*>> queries = {
      {"max(avg_over_time(scenefarm_llm_up" + r + "))", &w.llm_up_ratio},
      {"(sum(increase(scenefarm_llm_generation_duration_seconds_sum" + r +
           ")) / sum(increase(scenefarm_llm_generation_duration_seconds_count" + r +
           "))) or (sum(increase(scenefarm_llm_probe_duration_seconds_sum" + r +
           ")) / sum(increase(scenefarm_llm_probe_duration_seconds_count" + r + ")))",
       &w.llm_latency},
      {"(sum(increase(scenefarm_llm_generation_errors_total" + r +
           ")) / sum(increase(scenefarm_llm_generation_duration_seconds_count" + r +
           "))) or (sum(increase(scenefarm_llm_probe_errors_total" + r +
           ")) / sum(increase(scenefarm_llm_probe_duration_seconds_count" + r + ")))",
       &w.llm_errors}};
  for (const auto& [expr, out] : queries) {
    auto v = Scalar(c, expr, w.end);
    if (!v.ok()) return v.status();
    *out = *v;
  }
  return Status::Ok();
}

// The mean GPU.VramDeltaMB of the scenes whose telemetry.json was written in the window.
void SweepVram(const std::string& artifacts, double start, Window& w) {
  if (artifacts.empty()) return;
  std::error_code ec;
  double sum = 0;
  for (const auto& run : fs::directory_iterator(artifacts, ec)) {
    if (!run.is_directory(ec)) continue;
    for (const auto& scene : fs::directory_iterator(run.path(), ec)) {
      const fs::path f = scene.path() / "telemetry.json";
      const auto mtime = fs::last_write_time(f, ec);
      if (ec) continue;
      const double at =
          std::chrono::duration<double>(std::chrono::file_clock::to_sys(mtime).time_since_epoch())
              .count();
      if (at <= start || at > w.end) continue;
      std::ifstream in(f);
      const json doc = json::parse(in, nullptr, false);
      const json d = doc.is_object() ? doc.value("Telemetry", json::object())
                                           .value("GPU", json::object())
                                           .value("VramDeltaMB", json())
                                     : json();
      if (!d.is_number()) continue;
      sum += d.get<double>();
      ++w.vram_scenes;
    }
  }
  if (w.vram_scenes > 0) w.vram_delta_mb = sum / w.vram_scenes;
}

Result<Window> Sweep(http::Client& c, double end, const std::string& range, double span,
                     const Thresholds& t, const std::string& artifacts) {
  Window w;
  w.end = end;
  const std::string inc = "[" + range + "]";
  auto outcome = [&](const char* o) {
    return Dedup("scenefarm_scenes_total{outcome=\"" + std::string(o) + "\"}", "queue", inc);
  };
  auto exits = [&](const char* r) {
    return Dedup("scenefarm_scene_history_exits_total{reason=\"" + std::string(r) + "\"}", "queue",
                 inc);
  };
  for (auto [expr, out] : std::vector<std::pair<std::string, double*>>{
           {"sum(" + outcome("succeeded") + ")", &w.succeeded},
           {"sum(" + outcome("dead_lettered") + ")", &w.dead},
           {"sum(" + Dedup("scenefarm_runs_completed_total", "queue", inc) + ")", &w.runs},
           {"histogram_quantile(0.95, sum by (le) (" +
                Dedup("scenefarm_scene_duration_seconds_bucket", "queue, le", inc) + "))",
            &w.p95},
           {"sum(" +
                Dedup("scenefarm_scene_completions_total{method=\"forced_copy\"}", "queue", inc) +
                ") / sum(" + Dedup("scenefarm_scene_completions_total", "queue, method", inc) + ")",
            &w.forced_copy_rate},
           {"sum(" + Dedup("scenefarm_scene_frames_sum", "queue", inc) + ") / sum(" +
                Dedup("scenefarm_scene_frames_count", "queue", inc) + ")",
            &w.frames_avg},
           {"sum(" + exits("maxWait") + ")", &w.max_wait},
           {"sum(" + exits("attemptLimit") + ")", &w.attempt_limit}}) {
    auto v = Scalar(c, expr, end);
    if (!v.ok()) return v.status();
    *out = *v;
  }
  if (Status s = SweepFrames(c, inc, t, w); !s.ok()) return s;
  if (Status s = SweepLlm(c, range, w); !s.ok()) return s;
  auto f = Scalar(
      c, "sum by (reason) (" + Dedup("scenefarm_scene_fallbacks_total", "queue, reason", inc) + ")",
      end, &w.fallbacks, "reason");
  if (!f.ok()) return f.status();
  std::sort(w.fallbacks.begin(), w.fallbacks.end(),
            [](const auto& a, const auto& b) { return a.second > b.second; });
  SweepVram(artifacts, end - span, w);
  return w;
}

json WindowJson(const Window& w) {
  json f = json::object();
  for (const auto& [k, v] : w.fallbacks)
    if (v > 0) f[k] = v;
  const double scenes = w.succeeded + w.dead;
  return {{"window_end", telemetry::IsoTime(static_cast<int64_t>(w.end * 1000))},
          {"scenes_finished", Num(scenes)},
          {"succeeded", Num(w.succeeded)},
          {"dead_lettered", Num(w.dead)},
          {"runs_completed", Num(w.runs)},
          {"success_rate", Num(scenes > 0 ? w.succeeded / scenes : NAN)},
          {"p95_render_seconds", Num(w.p95)},
          {"forced_copy_rate", Num(w.forced_copy_rate)},
          {"frames_avg", Num(w.frames_avg)},
          {"frames_min_at_most", Num(w.frames_min_le)},
          {"scenes_below_frame_floor", Num(w.below_floor)},
          {"history_exits_maxWait", Num(w.max_wait)},
          {"history_exits_attemptLimit", Num(w.attempt_limit)},
          {"vram_delta_mb_avg", Num(w.vram_delta_mb)},
          {"vram_delta_scenes", w.vram_scenes},
          {"llm_up_ratio", Num(w.llm_up_ratio)},
          {"llm_latency_seconds_avg", Num(w.llm_latency)},
          {"llm_error_ratio", Num(w.llm_errors)},
          {"fallback_notes", f}};
}

bool Known(double v) {
  return !std::isnan(v);
}

// Seed 000's regression criteria, exactly, with the thresholds from the rules.
json Criteria(const Window& cur, const Window& prev, const Thresholds& t) {
  json out = json::array();
  auto add = [&](const char* name, std::optional<bool> holds, const std::string& rule) {
    out.push_back(
        {{"criterion", name}, {"holds", holds ? json(*holds) : json(nullptr)}, {"rule", rule}});
  };
  auto num = [](double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  // Min < T this week (a scene at most T-1 frames), and was >= P (scenes, none under P).
  add("FrameCountRegression",
      Known(cur.below_floor) && Known(prev.below_previous_floor)
          ? std::optional<bool>(cur.below_floor > 0.5 && prev.frames_counted > 0.5 &&
                                prev.below_previous_floor < 0.5)
          : std::nullopt,
      "Min < " + num(t.frames_min) + " (was >= " + num(t.frames_min_previous) + " previous week)");
  add("ForcedCopySpike",
      Known(cur.forced_copy_rate) && Known(prev.forced_copy_rate)
          ? std::optional<bool>(cur.forced_copy_rate > t.forced_copy &&
                                prev.forced_copy_rate < t.forced_copy_previous)
          : std::nullopt,
      "Rate > " + num(t.forced_copy * 100) + "% (was < " + num(t.forced_copy_previous * 100) +
          "% previous week)");
  add("LatencyRegression",
      Known(cur.p95) && Known(prev.p95)
          ? std::optional<bool>(cur.p95 > t.p95 && prev.p95 <= t.p95_previous)
          : std::nullopt,
      "P95 > " + num(t.p95) + "s (was <= " + num(t.p95_previous) + "s previous week)");
  add("QualityDegradation", std::nullopt,
      "Coherence < 3.8 (was >= 4.0 previous week): not measured, scenefarm records no "
      "coherence score");
  return out;
}

// Seed 000's escalation criteria and review items that are not regressions.
json Escalations(const Window& cur, const Window& prev, const Thresholds& t) {
  json out = json::array();
  if (Known(cur.p95) && Known(prev.p95) && prev.p95 > 0 &&
      cur.p95 > prev.p95 * (1 + t.p95_escalation))
    out.push_back("P95 latency increased more than " + std::to_string(int(t.p95_escalation * 100)) +
                  "% from the previous week: GPU contention likely");
  if (cur.forced_copy_rate > t.forced_copy_escalation)
    out.push_back("Forced-copy rate above " + std::to_string(int(t.forced_copy_escalation * 100)) +
                  "%: investigate done-marker reliability or the output directory");
  if (cur.max_wait > 0.5) out.push_back("Scenes with HistoryExitReason = maxWait (timeout spike)");
  if (Known(cur.llm_up_ratio) && cur.llm_up_ratio < t.llm_success)
    out.push_back("LLM health check success rate under " +
                  std::to_string(int(t.llm_success * 100)) + "%");
  return out;
}

std::string Cell(const json& v) {
  if (v.is_null()) return "n/a";
  if (v.is_string()) return v.get<std::string>();
  std::ostringstream s;
  s << std::setprecision(4) << v.get<double>();
  return s.str();
}

// "increasing" / "decreasing" when the last window moved more than 15 % from the first.
std::string TrendWord(const json& first, const json& last) {
  if (!first.is_number() || !last.is_number()) return "n/a";
  const double a = first.get<double>(), b = last.get<double>();
  if (std::fabs(b - a) <= 0.15 * std::max(std::fabs(a), 1e-9)) return "flat";
  return b > a ? "increasing" : "decreasing";
}

std::string Markdown(const json& report) {
  std::ostringstream md;
  const json& cur = report["this_window"];
  const json& prev = report["previous_window"];
  md << "# scenefarm weekly sweep, window ending " << cur["window_end"].get<std::string>() << " ("
     << report["range"].get<std::string>() << ")\n\n"
     << "| figure | this window | previous window |\n|---|---|---|\n";
  for (const auto& [k, v] : cur.items()) {
    if (k == "fallback_notes" || k == "window_end") continue;
    md << "| " << k << " | " << Cell(v) << " | " << Cell(prev[k]) << " |\n";
  }
  md << "\n## Regression criteria\n";
  for (const auto& k : report["criteria"]) {
    const std::string verdict =
        k["holds"].is_null() ? "n/a" : (k["holds"].get<bool>() ? "**HOLDS**" : "no");
    md << "- " << k["criterion"].get<std::string>() << ": " << verdict << " ("
       << k["rule"].get<std::string>() << ")\n";
  }
  md << "\n## Escalations\n";
  if (report["escalations"].empty()) md << "none\n";
  for (const auto& e : report["escalations"])
    md << "- " << e.get<std::string>() << "\n";
  md << "\n## Fallback notes by frequency\n";
  if (cur["fallback_notes"].empty()) md << "none\n";
  for (const auto& [reason, n] : cur["fallback_notes"].items())
    md << "- " << reason << ": " << Cell(n) << "\n";
  const json& trend = report["trend"];
  md << "\n## Trend, oldest window first\n\n| figure |";
  for (const auto& w : trend)
    md << " " << w["window_end"].get<std::string>().substr(0, 10) << " |";
  md << " trend |\n|---|";
  for (size_t i = 0; i <= trend.size(); ++i)
    md << "---|";
  md << "\n";
  for (const char* k : {"p95_render_seconds", "forced_copy_rate", "frames_avg", "vram_delta_mb_avg",
                        "success_rate", "llm_latency_seconds_avg"}) {
    md << "| " << k << " |";
    for (const auto& w : trend)
      md << " " << Cell(w[k]) << " |";
    md << " " << TrendWord(trend.front()[k], trend.back()[k]) << " |\n";
  }
  return md.str();
}

Result<double> ParseDate(const std::string& s) {
  std::tm tm{};
  std::istringstream in(s);
  in >> std::get_time(&tm, "%Y-%m-%d");
  if (in.fail()) return Status::InvalidArgument("--week-start '" + s + "': YYYY-MM-DD");
  return static_cast<double>(timegm(&tm));
}

struct ReportOptions {
  std::string prometheus, week_start, range = "7d", out = ".", artifacts;
  int weeks = 4;
  double window_end = 0;  // unix seconds; 0: now (or --week-start + range)
};

// The whole report: thresholds, `weeks` windows ending at `end` (newest last), criteria.
Result<json> BuildReport(const ReportOptions& o, double end, double span) {
  http::Client c(o.prometheus, {std::chrono::milliseconds(5000), std::chrono::milliseconds(30000)});
  auto t = ReadThresholds(c, static_cast<double>(std::time(nullptr)));
  if (!t.ok()) return t.status();
  std::vector<Window> windows;
  for (int i = o.weeks - 1; i >= 0; --i) {
    auto w = Sweep(c, end - i * span, o.range, span, *t, o.artifacts);
    if (!w.ok()) return w.status();
    windows.push_back(std::move(w).value());
  }
  const Window& cur = windows.back();
  const Window& prev = windows[windows.size() - 2];
  json criteria = Criteria(cur, prev, *t);
  bool regression = false;
  for (const auto& k : criteria)
    regression = regression || (k["holds"].is_boolean() && k["holds"].get<bool>());
  json trend = json::array();
  for (const auto& w : windows)
    trend.push_back(WindowJson(w));
  return json{{"window_end", telemetry::IsoTime(static_cast<int64_t>(end * 1000))},
              {"range", o.range},
              {"this_window", trend.back()},
              {"previous_window", trend[trend.size() - 2]},
              {"criteria", criteria},
              {"escalations", Escalations(cur, prev, *t)},
              {"trend", trend},
              {"regression", regression}};
}

// Resolves the window, builds, writes and prints the report; returns the exit code.
int RunReport(const ReportOptions& o, bool as_json) {
  auto range = ParseDuration(o.range);
  if (!range.ok()) {
    std::cerr << "scenefarm: report: " << range.status().message() << "\n";
    return kExitUsage;
  }
  const double span = range->count() / 1000.0;
  double end = static_cast<double>(std::time(nullptr));
  if (!o.week_start.empty()) {
    auto start = ParseDate(o.week_start);
    if (!start.ok()) {
      std::cerr << "scenefarm: report: " << start.status().message() << "\n";
      return kExitUsage;
    }
    end = *start + span;
  }
  if (o.window_end > 0) end = o.window_end;
  auto report = BuildReport(o, end, span);
  if (!report.ok()) return Fail("report: " + report.status().message());
  const std::string md = Markdown(*report);
  std::error_code ec;
  fs::create_directories(o.out, ec);
  const auto dir = fs::path(o.out);
  Status s1 = telemetry::WriteFileAtomically(dir / "report.json", report->dump(2) + "\n");
  Status s2 = telemetry::WriteFileAtomically(dir / "report.md", md);
  if (!s1.ok() || !s2.ok()) return Fail("report: " + (s1.ok() ? s2 : s1).message());
  if (as_json) {
    std::cout << report->dump() << "\n";
  } else {
    std::cout << md << "\nwritten: " << (dir / "report.json").string() << ", "
              << (dir / "report.md").string() << "\n";
  }
  return (*report)["regression"].get<bool>() ? kExitFailure : kExitOk;
}

}  // namespace

void RegisterReport(CLI::App& app, Global& g, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "report",
      "the weekly sweep from Prometheus, against the week before (exit 1 on a regression)");
  auto o = std::make_shared<ReportOptions>();
  if (const char* a = std::getenv("SCENEFARM_ARTIFACTS_DIR"); a && *a) o->artifacts = a;
  cmd->add_option("--prometheus", o->prometheus, "Prometheus base URL")->required();
  cmd->add_option("--week-start", o->week_start,
                  "YYYY-MM-DD (UTC); default: the window ending now");
  cmd->add_option("--range", o->range, "window length (7d; 1h for a quick look)")
      ->capture_default_str();
  cmd->add_option("--window-end", o->window_end, "end of this window, unix seconds (default now)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--weeks", o->weeks, "windows in the trend, this one included")
      ->capture_default_str()
      ->check(CLI::Range(2, 52));
  cmd->add_option("--artifacts", o->artifacts,
                  "artifacts directory, for the scenes' VRAM delta (SCENEFARM_ARTIFACTS_DIR)");
  cmd->add_option("--out", o->out, "directory for report.json and report.md")
      ->capture_default_str();
  cmd->add_flag("--json", g.json, "print report.json too");
  cmd->callback([&g, o, exit_code] { *exit_code = RunReport(*o, g.json); });
}

}  // namespace scenefarm::cli
