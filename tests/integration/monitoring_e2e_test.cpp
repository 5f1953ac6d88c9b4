// Monitoring end to end on loopback: two scenefarm-exporter replicas over a Redis populated
// through the queue protocol and by a live worker's heartbeat readings (plus the ComfyUI test
// server, the fake NVML library and an LLM stand-in with a generation probe), a real prometheus
// (1 s scrape and evaluation) scraping both and loading alerts/scenefarm.rules.yml, a real
// alertmanager (clustering off) loading alerts/alertmanager.yml, and a webhook receiver run by
// this test. The copies given to prometheus and alertmanager differ from the repository's files
// only in time (every `for:` 0s, group waits 1 s) and in the receiver's URL.
// The farm is driven into five alert conditions; the notifications must arrive with the right
// labels, one must resolve; the second replica must change no figure; every dashboard panel's
// expressions must return series; and `scenefarm report` must apply seed 000's criteria with the
// thresholds the rules record.
#include <civetweb.h>
#include <gtest/gtest.h>

#include <cmath>
#include <ctime>
#include <fstream>
#include <mutex>
#include <regex>

#include "scenefarm/http_client.h"
#include "scenefarm/queue.h"
#include "support/llm_stub.h"
#include "support/net.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

// Alertmanager's webhook: every POST body, kept.
class WebhookReceiver {
 public:
  WebhookReceiver() {
    const char* opts[] = {"listening_ports", "127.0.0.1:0", "num_threads", "4", nullptr};
    mg_callbacks cb{};
    ctx_ = mg_start(&cb, this, opts);
    mg_server_port p[1];
    mg_get_server_ports(ctx_, 1, p);
    port_ = p[0].port;
    mg_set_request_handler(ctx_, "/", &WebhookReceiver::Handle, this);
  }
  ~WebhookReceiver() { mg_stop(ctx_); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // (receiver path, notification) pairs so far.
  std::vector<std::pair<std::string, json>> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }
  // The first alert notified with these labels and status ("firing" or "resolved").
  std::optional<std::pair<std::string, json>> Find(const std::string& alertname,
                                                   const std::string& status,
                                                   const json& labels = json::object()) {
    for (const auto& [path, n] : received()) {
      for (const auto& a : n.value("alerts", json::array())) {
        if (a["labels"].value("alertname", "") != alertname || a.value("status", "") != status)
          continue;
        bool match = true;
        for (const auto& [k, v] : labels.items())
          match = match && a["labels"].value(k, "") == v.get<std::string>();
        if (match) return std::make_pair(path, a);
      }
    }
    return std::nullopt;
  }

 private:
  static int Handle(mg_connection* conn, void* user) {
    auto* self = static_cast<WebhookReceiver*>(user);
    std::string body;
    char buf[4096];
    int n;
    while ((n = mg_read(conn, buf, sizeof(buf))) > 0)
      body.append(buf, n);
    {
      std::lock_guard<std::mutex> lock(self->mu_);
      self->received_.emplace_back(mg_get_request_info(conn)->local_uri,
                                   json::parse(body, nullptr, false));
    }
    mg_printf(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return 200;
  }
  mg_context* ctx_ = nullptr;
  int port_ = 0;
  std::mutex mu_;
  std::vector<std::pair<std::string, json>> received_;
};

std::string Slurp(const fs::path& p) {
  return ReadFile(p);
}

class MonitoringE2E : public ::testing::Test {
 protected:
  void StartComfy(int port) {
    comfy_ = std::make_unique<Process>(
        std::vector<std::string>{SCENEFARM_TEST_SERVER_BIN, "--port", std::to_string(port),
                                 "--base-dir", (dir_.path() / "comfy").string()},
        dir_.path() / "comfy.log");
    ASSERT_TRUE(WaitFor([&] { return PortOpen(port); })) << comfy_->Log();
  }
  // An instant query, evaluated now or at unix time `at`.
  json Query(const std::string& expr, int64_t at = 0) {
    http::Client c("http://127.0.0.1:" + std::to_string(prom_port_));
    auto r = c.Get("/api/v1/query?query=" + http::UrlEncode(expr) +
                   (at > 0 ? "&time=" + std::to_string(at) : ""));
    if (!r.ok()) return json::object();
    json j = json::parse(r->body, nullptr, false);
    return j.is_object() ? j : json::object();  // not ready yet: no JSON
  }

  TempDir dir_;
  RedisServer redis_;
  SystemClock clock_;
  // The scalar value of an instant query (NaN when it has no result).
  double Value(const std::string& expr, int64_t at = 0) {
    json r = Query(expr, at);
    if (r.value("status", "") != "success" || r["data"]["result"].empty()) return std::nan("");
    return std::stod(r["data"]["result"][0]["value"][1].get<std::string>());
  }

  std::unique_ptr<Process> comfy_, exporter_, alertmanager_, prometheus_, worker_;
  std::vector<std::unique_ptr<Process>> exporters_;
  int prom_port_ = 0;
};

TEST_F(MonitoringE2E, AlertsReachTheWebhookAndEveryDashboardPanelHasData) {
  const fs::path src = SCENEFARM_SOURCE_DIR;
  const fs::path d = dir_.path();
  redis::Client client(redis_.options());
  queue::Queue q(client, queue::QueueOptions{}, clock_);
  Scene base;
  base.run = "e2e";
  base.workflow = {{"1", {{"class_type", "EmptyImage"}, {"inputs", json::object()}}}};
  std::vector<Scene> scenes;
  for (const char* id : {"x0", "x1", "x2", "x3", "x4", "x5"}) {
    base.id = id;
    scenes.push_back(base);
  }
  ASSERT_TRUE(q.Enqueue(scenes).ok());

  const int comfy_port = FreePort();
  StartComfy(comfy_port);
  const std::string comfy_url = "http://127.0.0.1:" + std::to_string(comfy_port);
  LlmStub llm;
  WebhookReceiver hook;

  // Two replicas of the exporter, as a farm runs them for availability, and a worker whose
  // heartbeat publishes its host's readings (the fake NVML's GPUs, its artifacts disk).
  const int exporter_port = FreePort(), replica_port = FreePort();
  setenv("SCENEFARM_NVML_LIBRARY", SCENEFARM_FAKE_NVML_LIB, 1);
  for (int port : {exporter_port, replica_port}) {
    exporters_.push_back(std::make_unique<Process>(
        std::vector<std::string>{SCENEFARM_EXPORTER_BIN, "--listen",
                                 "127.0.0.1:" + std::to_string(port), "--redis-url", redis_.url(),
                                 "--comfyui-url", comfy_url, "--llm-url", llm.url(), "--llm-model",
                                 "qwen2.5-7b-instruct", "--llm-generation-interval-seconds", "1",
                                 "--timeout-seconds", "1"},
        d / ("exporter-" + std::to_string(port) + ".log")));
  }
  worker_ = std::make_unique<Process>(
      std::vector<std::string>{SCENEFARM_TEST_WORKER_BIN, "--redis-url", redis_.url(), "--queue",
                               "idle", "--worker-id", "w-readings", "--comfyui-url", comfy_url,
                               "--artifacts-dir", d.string(), "--lease-seconds", "2",
                               "--heartbeat-seconds", "0.5"},
      d / "worker.log");
  unsetenv("SCENEFARM_NVML_LIBRARY");
  exporter_ = std::move(exporters_.front());
  ASSERT_TRUE(WaitFor([&] { return PortOpen(exporter_port) && PortOpen(replica_port); }))
      << exporter_->Log();

  // The repository's rules and Alertmanager config, with time compressed and our receiver.
  std::string rules = Slurp(src / "alerts" / "scenefarm.rules.yml");
  rules = std::regex_replace(rules, std::regex(R"(for: \d+[smh])"), "for: 0s");
  std::ofstream(d / "rules.yml") << rules;
  std::string am = Slurp(src / "alerts" / "alertmanager.yml");
  am = std::regex_replace(am, std::regex(R"(http://127\.0\.0\.1:9099)"), hook.url());
  am = std::regex_replace(am, std::regex(R"(group_wait: \w+)"), "group_wait: 1s");
  am = std::regex_replace(am, std::regex(R"(group_interval: \w+)"), "group_interval: 1s");
  std::ofstream(d / "alertmanager.yml") << am;

  const int am_port = FreePort();
  alertmanager_ = std::make_unique<Process>(
      std::vector<std::string>{
          "/usr/bin/prometheus-alertmanager", "--config.file=" + (d / "alertmanager.yml").string(),
          "--storage.path=" + (d / "am").string(),
          "--web.listen-address=127.0.0.1:" + std::to_string(am_port), "--cluster.listen-address="},
      d / "alertmanager.log");
  ASSERT_TRUE(WaitFor([&] { return PortOpen(am_port); }, 30s)) << alertmanager_->Log();

  prom_port_ = FreePort();
  std::ofstream(d / "prometheus.yml")
      << "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
      << "rule_files: [" << (d / "rules.yml").string() << "]\n"
      << "alerting:\n  alertmanagers:\n    - static_configs: [{targets: ['127.0.0.1:" << am_port
      << "']}]\n"
      << "scrape_configs:\n  - job_name: scenefarm\n    honor_labels: true\n"
      << "    static_configs: [{targets: ['127.0.0.1:" << exporter_port
      << "', '127.0.0.1:" << replica_port << "']}]\n";
  prometheus_ = std::make_unique<Process>(
      std::vector<std::string>{"/usr/bin/prometheus",
                               "--config.file=" + (d / "prometheus.yml").string(),
                               "--storage.tsdb.path=" + (d / "tsdb").string(),
                               "--web.listen-address=127.0.0.1:" + std::to_string(prom_port_)},
      d / "prometheus.log");
  ASSERT_TRUE(WaitFor([&] { return PortOpen(prom_port_); }, 30s)) << prometheus_->Log();
  // A few scrapes of the quiet farm first, so the counters' increases are seen as increases.
  ASSERT_TRUE(WaitFor(
      [&] {
        json r = Query(R"(count_over_time(scenefarm_scenes_total{outcome="dead_lettered"}[1m]))");
        return r.value("status", "") == "success" && !r["data"]["result"].empty() &&
               std::stod(r["data"]["result"][0]["value"][1].get<std::string>()) >= 3;
      },
      60s))
      << prometheus_->Log() << exporter_->Log();

  // The week before, for the report: one scene of 30 frames, seen by Prometheus before the
  // boundary between the report's two windows.
  auto x0 = q.Lease("w1", 60s);
  ASSERT_TRUE(q.Ack(**x0, "w1",
                    {{"telemetry",
                      {{"DurationSeconds", 20.0},
                       {"HistoryExitReason", "success"},
                       {"DoneMarkerDetected", true},
                       {"DoneMarkerWaitSeconds", 0.3},
                       {"FrameCount", 30}}}})
                  .ok());
  ASSERT_TRUE(WaitFor([&] { return Value("max(scenefarm_scene_frames_count)") == 1; }, 30s));
  const auto boundary = static_cast<int64_t>(std::time(nullptr)) + 1;
  ASSERT_TRUE(WaitFor([&] { return std::time(nullptr) > boundary; }, 5s));

  // Drive the farm: a workflow refused (dead letter), a short clip (10 frames), an attempt that
  // ran out of GPU memory, an attempt that ran out of SceneMaxWaitSeconds.
  auto x1 = q.Lease("w1", 60s);
  ASSERT_TRUE(q.Fail(**x1, "w1", "ComfyUI refused the workflow (400)", true, 0ms, "unknown",
                     nullptr, {"workflow_refused"})
                  .ok());
  auto x2 = q.Lease("w1", 60s);
  ASSERT_TRUE(q.Ack(**x2, "w1",
                    {{"telemetry",
                      {{"DurationSeconds", 12.5},
                       {"HistoryExitReason", "success"},
                       {"DoneMarkerDetected", true},
                       {"DoneMarkerWaitSeconds", 0.2},
                       {"FrameCount", 10}}}})
                  .ok());
  auto x3 = q.Lease("w1", 60s);
  ASSERT_TRUE(q.Fail(**x3, "w1", "torch.OutOfMemoryError: Allocation on device", false, 60000ms,
                     "success", nullptr, {"gpu_memory_pressure"})
                  .ok());
  auto x4 = q.Lease("w1", 60s);  // x5 stays pending
  ASSERT_TRUE(q.Fail(**x4, "w1", "SceneMaxWaitSeconds reached", false, 600000ms, "maxWait").ok());

  const json queue_labels = {{"queue", "scenes"}, {"severity", "warning"}};
  for (const char* alert : {"ScenefarmDeadLetterGrowing", "ScenefarmFrameCountLow",
                            "ScenefarmGpuOutOfMemoryErrors", "ScenefarmHistoryTimeouts"}) {
    ASSERT_TRUE(WaitFor([&] { return hook.Find(alert, "firing", queue_labels).has_value(); }, 60s))
        << alert << " never arrived; got " << hook.received().size() << " notifications\n"
        << prometheus_->Log();
    auto n = hook.Find(alert, "firing", queue_labels);
    EXPECT_EQ(n->first, "/warning") << alert;
    EXPECT_EQ(n->second["annotations"]["runbook_url"],
              std::string("docs/runbooks/") + alert + ".md");
    EXPECT_FALSE(n->second["annotations"].value("summary", "").empty());
  }

  // ComfyUI goes away: a critical alert naming it; it comes back: resolved.
  comfy_->Stop();
  const json comfy_labels = {{"instance", comfy_url}, {"severity", "critical"}};
  ASSERT_TRUE(WaitFor(
      [&] { return hook.Find("ScenefarmComfyUiDown", "firing", comfy_labels).has_value(); }, 60s))
      << "ComfyUI down never notified";
  EXPECT_EQ(hook.Find("ScenefarmComfyUiDown", "firing", comfy_labels)->first, "/critical");
  StartComfy(comfy_port);
  ASSERT_TRUE(WaitFor(
      [&] { return hook.Find("ScenefarmComfyUiDown", "resolved", comfy_labels).has_value(); }, 60s))
      << "ComfyUI down never resolved";

  // Every dashboard panel's expressions, variables substituted, return series.
  json dash = json::parse(Slurp(src / "dashboards" / "scenefarm-overview.json"));
  int queried = 0;
  for (const auto& panel : dash["panels"]) {
    for (const auto& target : panel["targets"]) {
      std::string expr = target["expr"];
      expr = std::regex_replace(expr, std::regex(R"(\$queue)"), "scenes");
      expr = std::regex_replace(expr, std::regex(R"(\$instance)"), ".*");
      expr = std::regex_replace(expr, std::regex(R"(\$__rate_interval)"), "1m");
      json r;
      ASSERT_TRUE(WaitFor(
          [&] {
            r = Query(expr);
            return r.value("status", "") == "success" && !r["data"]["result"].empty();
          },
          20s))
          << "panel \"" << panel["title"].get<std::string>() << "\": " << expr << " -> "
          << r.dump();
      ++queried;
    }
  }
  EXPECT_GE(queried, 20);

  // Two exporters are scraped, and the second changes no figure: the rules and panels count
  // what both read from Redis once.
  ASSERT_EQ(Value(R"(count(up{job="scenefarm"} == 1))"), 2);
  EXPECT_EQ(Value(R"(sum(scenefarm_queue_depth{queue="scenes",state="pending"}))"), 2)
      << "a naive sum sees both replicas";
  EXPECT_EQ(Value(R"(queue:scenefarm_queue_pending:sum{queue="scenes"})"), 1);
  EXPECT_EQ(Value("scenefarm_workers_live:max"), 1);
  const double dead = Value(
      R"(max by (queue) (increase(scenefarm_scenes_total{queue="scenes",outcome="dead_lettered"}[15m])))");
  EXPECT_GT(dead, 0.5);
  EXPECT_LT(dead, 1.5);
  // The worker's readings, per ComfyUI instance and worker, once however many exporters.
  const std::string gpu0 = "scenefarm_gpu_memory_free_bytes{instance=\"" + comfy_url +
                           "\",gpu=\"0\",worker=\"w-readings\"}";
  EXPECT_EQ(Value("count(" + gpu0 + ")"), 1);
  EXPECT_EQ(Value(gpu0), 60.0 * (1ULL << 30));

  // The weekly sweep: this window (since the boundary) against the one before it. The week
  // before had one scene of 30 frames; this one a scene of 10: seed 000's FrameCountRegression
  // ("Min < 24 (was >= 25 previous week)"), with the thresholds the rules record.
  const auto end = static_cast<int64_t>(std::time(nullptr)) + 1;
  // The report evaluates at `end`; every sample up to it is in once each exporter's series has
  // one past it (then the report and the queries below see the same data).
  ASSERT_TRUE(WaitFor(
      [&] { return Value(R"(min(timestamp(scenefarm_scenes_total{outcome="succeeded"})))") > end; },
      30000ms));
  const fs::path rep = d / "report";
  const std::string cli = std::string(SCENEFARM_CLI_BIN) +
                          " report --prometheus http://127.0.0.1:" + std::to_string(prom_port_) +
                          " --window-end " + std::to_string(end) + " --range " +
                          std::to_string(end - boundary) + "s --weeks 3 --out " + rep.string();
  int rc = std::system((cli + " > " + (d / "report.out").string() + " 2>&1").c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1) << ReadFile(d / "report.out");
  json report = json::parse(ReadFile(rep / "report.json"), nullptr, false);
  ASSERT_TRUE(report.is_object()) << ReadFile(d / "report.out");
  EXPECT_EQ(report["regression"], true);
  const json& frames = report["criteria"][0];
  EXPECT_EQ(frames["criterion"], "FrameCountRegression");
  EXPECT_EQ(frames["holds"], true) << report.dump(2);
  EXPECT_EQ(frames["rule"], "Min < 24 (was >= 25 previous week)");
  EXPECT_EQ(report["criteria"][1]["rule"], "Rate > 15% (was < 10% previous week)");
  EXPECT_EQ(report["criteria"][2]["rule"], "P95 > 140s (was <= 120s previous week)");
  EXPECT_TRUE(report["criteria"][3]["holds"].is_null());  // coherence: not measured
  const json& cur = report["this_window"];
  const json& prev = report["previous_window"];
  // One scene succeeded in the window. increase() extrapolates to the window's end, so the
  // figure is 1 or more (1.5 was seen under load when the series was young), not exactly 1:
  // the check is that it is the largest of the two replicas' increases (what the report's
  // dedup reads), evaluated as the report does, at the window's end over its range, never
  // their sum.
  const std::string inc = "increase(scenefarm_scenes_total{outcome=\"succeeded\"}[" +
                          std::to_string(end - boundary) + "s])";
  EXPECT_GE(cur["succeeded"].get<double>(), 0.99);
  EXPECT_NEAR(cur["succeeded"].get<double>(), Value("sum(max by (queue) (" + inc + "))", end),
              1e-9);
  EXPECT_GE(Value("count(" + inc + ")", end), 2);  // both replicas have the series
  EXPECT_GT(cur["dead_lettered"].get<double>(), 0.5);
  EXPECT_EQ(cur["frames_min_at_most"], 10.0);
  EXPECT_EQ(prev["frames_min_at_most"], 30.0);
  EXPECT_GT(cur["history_exits_maxWait"].get<double>(), 0.5);
  EXPECT_GT(cur["fallback_notes"].value("gpu_memory_pressure", 0.0), 0.5);
  EXPECT_GT(cur["llm_up_ratio"].get<double>(), 0.5);
  EXPECT_FALSE(cur["llm_latency_seconds_avg"].is_null());
  EXPECT_EQ(report["trend"].size(), 3u);
  bool max_wait_escalated = false;
  for (const auto& e : report["escalations"])
    max_wait_escalated =
        max_wait_escalated || e.get<std::string>().find("maxWait") != std::string::npos;
  EXPECT_TRUE(max_wait_escalated) << report["escalations"].dump();
  const std::string md = ReadFile(rep / "report.md");
  EXPECT_NE(md.find("FrameCountRegression: **HOLDS** (Min < 24 (was >= 25 previous week))"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("## Trend, oldest window first"), std::string::npos) << md;
  // No Prometheus, or one without the rules' thresholds: a failure that says why.
  rc = std::system((std::string(SCENEFARM_CLI_BIN) + " report --prometheus http://127.0.0.1:" +
                    std::to_string(FreePort()) + " --out " + rep.string() + " > /dev/null 2>&1")
                       .c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
}

}  // namespace
}  // namespace scenefarm::testing
