// scenefarm-exporter as a process against a real redis-server with state written through the
// queue protocol, the ComfyUI test server, the fake NVML library and an LLM stand-in: values on
// /metrics match what was written, each source down gives collector_success 0 and still a 200,
// promtool finds nothing wrong, and TLS and basic auth accept and refuse as configured.
#include <arpa/inet.h>
#include <crypt.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "live_workers.h"
#include "malloc_settings.h"
#include "scenefarm/http_client.h"
#include "scenefarm/metric_names.h"
#include "scenefarm/queue.h"
#include "scenefarm/readings.h"
#include "scenefarm/telemetry.h"
#include "support/gzip.h"
#include "support/llm_stub.h"
#include "support/net.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace std::chrono_literals;

// The value of one series ("name{a=\"b\",...}" exactly as printed, or "name"); NaN if absent.
double Metric(const std::string& text, const std::string& series) {
  const std::string key = "\n" + series + " ";
  const auto pos = ("\n" + text).find(key);
  if (pos == std::string::npos) return std::nan("");
  return std::stod(text.substr(pos + key.size() - 1));
}
bool Has(const std::string& text, const std::string& prefix) {
  return ("\n" + text).find("\n" + prefix) != std::string::npos;
}

// The families a scrape declares ("# TYPE name type" lines).
std::set<std::string> DeclaredFamilies(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) out.insert(line.substr(7, line.find(' ', 7) - 7));
  }
  return out;
}

// One HTTP/1.1 GET on 127.0.0.1:port with the request headers given ("Name: value\r\n"...),
// read to its Content-Length: what http::Client does not show (Content-Encoding, the raw body).
struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;
};
RawResponse RawGet(int port, const std::string& path, const std::string& headers,
                   const std::string& method = "GET") {
  RawResponse r;
  const int fd = ConnectLoopback(port, 30);
  if (fd < 0) return r;
  const std::string req = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
                          "Connection: close\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return r;
  }
  std::string in;
  char buf[65536];
  size_t head_end = std::string::npos;
  size_t length = std::string::npos;
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    in.append(buf, n);
    if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
      std::istringstream lines(in.substr(0, head_end));
      std::string line;
      std::getline(lines, line);
      r.status = std::atoi(line.substr(line.find(' ') + 1).c_str());
      while (std::getline(lines, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), ::tolower);
        r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      if (r.headers.count("content-length")) length = std::stoul(r.headers["content-length"]);
    }
    if (head_end != std::string::npos && length != std::string::npos &&
        in.size() >= head_end + 4 + length)
      break;
  }
  close(fd);
  if (head_end != std::string::npos) r.body = in.substr(head_end + 4);
  return r;
}

// A page's lines with the values cut off: its series in order, HELP and TYPE lines whole.
std::vector<std::string> Series(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    out.push_back(line[0] == '#' ? line : line.substr(0, line.rfind(' ')));
  return out;
}

// The ComfyUI test server as a process on a port it picks.
class ComfyProcess {
 public:
  ComfyProcess()
      : server_({SCENEFARM_TEST_SERVER_BIN, "--port", "0", "--port-file",
                 (dir_.path() / "port").string(), "--base-dir", dir_.path().string()},
                dir_.path() / "log") {}
  // Its URL once it listens; "" when it never wrote its port.
  std::string Url() {
    if (!WaitFor([&] { return !ReadFile(dir_.path() / "port").empty(); })) return "";
    std::string port = ReadFile(dir_.path() / "port");
    port.erase(port.find_last_not_of(" \n") + 1);
    return "http://127.0.0.1:" + port;
  }

 private:
  TempDir dir_;  // before server_: it is built first
  Process server_;
};

int Shell(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

class ExporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = std::make_unique<redis::Client>(redis_.options());
    queue_ = std::make_unique<queue::Queue>(*client_, queue::QueueOptions{}, clock_);
    setenv("SCENEFARM_NVML_LIBRARY", SCENEFARM_FAKE_NVML_LIB, 1);
    unsetenv("LOCAL_LLM_HEALTHCHECK_URL");
    unsetenv("LOCAL_LLM_SKIP_HEALTHCHECK");
  }
  void TearDown() override {
    exporter_.reset();
    unsetenv("SCENEFARM_NVML_LIBRARY");
  }
  void StartExporter(std::vector<std::string> extra = {}) {
    port_ = FreePort();
    std::vector<std::string> argv = {SCENEFARM_EXPORTER_BIN, "--listen",
                                     "127.0.0.1:" + std::to_string(port_), "--redis-url",
                                     redis_.url()};
    if (std::find(extra.begin(), extra.end(), "--timeout-seconds") == extra.end())
      argv.insert(argv.end(), {"--timeout-seconds", "2"});
    argv.insert(argv.end(), extra.begin(), extra.end());
    exporter_ = std::make_unique<Process>(argv, dir_.path() / "exporter.log");
    ASSERT_TRUE(WaitFor([&] { return PortOpen(port_); })) << exporter_->Log();
  }
  http::Response Get(const std::string& path) {
    http::Client c("http://127.0.0.1:" + std::to_string(port_));
    auto r = c.Get(path);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : http::Response{};
  }
  std::string Scrape() {
    auto r = Get("/metrics");
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  }
  Scene MakeScene(const std::string& id, int expected_frames = 0) {
    Scene s;
    s.id = id;
    s.run = "story";
    s.workflow = {{"1", {{"class_type", "EmptyImage"}, {"inputs", json::object()}}}};
    if (expected_frames > 0) s.expected_frames = expected_frames;
    return s;
  }

  // scenefarm-test-worker (the worker loop with the FakeRenderer) on queue `queue`.
  std::unique_ptr<Process> StartWorker(const std::string& id, const std::string& queue,
                                       std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {SCENEFARM_TEST_WORKER_BIN,
                                     "--redis-url",
                                     redis_.url(),
                                     "--worker-id",
                                     id,
                                     "--queue",
                                     queue,
                                     "--lease-seconds",
                                     "2",
                                     "--heartbeat-seconds",
                                     "0.2",
                                     "--idle-poll-seconds",
                                     "0.05"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<Process>(argv, dir_.path() / (id + ".log"));
  }

  RedisServer redis_;
  SystemClock clock_;
  TempDir dir_;
  std::unique_ptr<redis::Client> client_;
  std::unique_ptr<queue::Queue> queue_;
  std::unique_ptr<Process> exporter_;
  int port_ = 0;
};

TEST_F(ExporterTest, QueueWorkersAndScenesMatchWhatWasWritten) {
  ASSERT_TRUE(
      queue_->Enqueue({MakeScene("a", 24), MakeScene("b"), MakeScene("c"), MakeScene("d")}).ok());
  // a: succeeded with telemetry (done marker, 22 frames of 24); b: dead (400); c: leased by w2.
  auto a = queue_->Lease("w1", 30s);
  json result = {{"expected_frames", 24},
                 {"fallback_reasons", {"frames_short"}},
                 {"telemetry",
                  {{"DurationSeconds", 45.2},
                   {"HistoryExitReason", "success"},
                   {"DoneMarkerDetected", true},
                   {"DoneMarkerWaitSeconds", 0.4},
                   {"ForcedCopyTriggered", false},
                   {"FrameCount", 22}}}};
  ASSERT_TRUE(queue_->Ack(**a, "w1", result).ok());
  auto b = queue_->Lease("w1", 30s);
  ASSERT_TRUE(queue_
                  ->Fail(**b, "w1", "ComfyUI refused the workflow (400)", true, 0ms, "unknown",
                         nullptr, {"workflow_refused"})
                  .ok());
  auto c = queue_->Lease("w2", 30s);
  ASSERT_TRUE(queue_->Heartbeat("w1", 30s, {}).ok());
  ASSERT_TRUE(queue_->Heartbeat("w2", 30s, {**c}).ok());
  ASSERT_TRUE(client_->Command({"HSET", queue::WorkerKey("w2"), "busy", "1"}).ok());

  StartExporter({"--comfyui-url", "", "--gpu-source", "none", "--worker-labels"});
  const std::string m = Scrape();
  EXPECT_EQ(Metric(m, R"(scenefarm_queue_depth{queue="scenes",state="pending"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_queue_depth{queue="scenes",state="leased"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_queue_depth{queue="scenes",state="dead"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_queue_depth{queue="scenes",state="delayed"})"), 0);
  EXPECT_GE(Metric(m, R"(scenefarm_queue_oldest_pending_age_seconds{queue="scenes"})"), 0);
  EXPECT_EQ(Metric(m, R"(scenefarm_queue_runs_in_progress{queue="scenes"})"), 1);
  const double held = Metric(m, R"(scenefarm_queue_oldest_leased_age_seconds{queue="scenes"})");
  EXPECT_GE(held, 0);
  EXPECT_LT(held, 60);
  EXPECT_EQ(Metric(m, "scenefarm_workers_live"), 2);
  EXPECT_EQ(Metric(m, "scenefarm_workers_busy"), 1);
  EXPECT_EQ(Metric(m, "scenefarm_workers_idle"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_worker_busy{worker="w2"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_scenes_total{queue="scenes",outcome="succeeded"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_scenes_total{queue="scenes",outcome="dead_lettered"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_scenes_enqueued_total{queue="scenes"})"), 4);
  EXPECT_EQ(Metric(m, R"(scenefarm_runs_completed_total{queue="scenes"})"), 0);  // c, d open
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_completions_total{queue="scenes",method="done_marker"})"),
            1);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_completions_total{queue="scenes",method="forced_copy"})"),
            0);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_history_exits_total{queue="scenes",reason="success"})"),
            1);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_history_exits_total{queue="scenes",reason="unknown"})"),
            1);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_frames_short_total{queue="scenes"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_fallbacks_total{queue="scenes",reason="frames_short"})"),
            1);
  EXPECT_EQ(
      Metric(m, R"(scenefarm_scene_fallbacks_total{queue="scenes",reason="workflow_refused"})"), 1);
  // Histograms are cumulative with every bound present.
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_duration_seconds_bucket{queue="scenes",le="30"})"), 0);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_duration_seconds_bucket{queue="scenes",le="45"})"), 0);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_duration_seconds_bucket{queue="scenes",le="60"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_duration_seconds_bucket{queue="scenes",le="+Inf"})"), 1);
  EXPECT_DOUBLE_EQ(Metric(m, R"(scenefarm_scene_duration_seconds_sum{queue="scenes"})"), 45.2);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_frames_bucket{queue="scenes",le="21"})"), 0);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_frames_bucket{queue="scenes",le="22"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_done_marker_wait_seconds_count{queue="scenes"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_scene_queue_wait_seconds_count{queue="scenes"})"), 3);
  for (const char* c : {"redis", "queue", "workers", "scenes"})
    EXPECT_EQ(
        Metric(m, std::string("scenefarm_exporter_collector_success{collector=\"") + c + "\"}"), 1)
        << c;
  EXPECT_EQ(Metric(m, "scenefarm_redis_up"), 1);
}

TEST_F(ExporterTest, EveryQueueInRedisIsReported) {
  queue::QueueOptions qo;
  qo.name = "previews";
  queue::Queue previews(*client_, qo, clock_);
  ASSERT_TRUE(previews.Enqueue({MakeScene("p1"), MakeScene("p2")}).ok());
  StartExporter({"--comfyui-url", "", "--gpu-source", "none"});
  const std::string m = Scrape();
  EXPECT_EQ(Metric(m, R"(scenefarm_queue_depth{queue="previews",state="pending"})"), 2);
  EXPECT_EQ(Metric(m, R"(scenefarm_queue_depth{queue="scenes",state="pending"})"), 0);
}

TEST_F(ExporterTest, GpuFiguresComeFromNvml) {
  StartExporter({"--comfyui-url", ""});
  const std::string m = Scrape();
  EXPECT_EQ(Metric(m, R"(scenefarm_gpu_memory_total_bytes{gpu="0",uuid="GPU-fake-0000"})"),
            80.0 * (1ULL << 30));
  EXPECT_EQ(Metric(m, R"(scenefarm_gpu_memory_free_bytes{gpu="1",uuid="GPU-fake-0001"})"),
            50.0 * (1ULL << 30));
  EXPECT_EQ(Metric(m, R"(scenefarm_gpu_memory_used_bytes{gpu="0",uuid="GPU-fake-0000"})"),
            20.0 * (1ULL << 30));
  EXPECT_EQ(Metric(m, R"(scenefarm_gpu_temperature_celsius{gpu="1",uuid="GPU-fake-0001"})"), 51);
  EXPECT_DOUBLE_EQ(Metric(m, R"(scenefarm_gpu_utilization_ratio{gpu="0",uuid="GPU-fake-0000"})"),
                   0.40);
  EXPECT_DOUBLE_EQ(Metric(m, R"(scenefarm_gpu_power_watts{gpu="0",uuid="GPU-fake-0000"})"), 250.5);
  EXPECT_EQ(
      Metric(
          m,
          R"(scenefarm_gpu_info{gpu="0",uuid="GPU-fake-0000",name="NVIDIA Fake H100 80GB",driver="550.54.15",source="nvml"})"),
      1);
  EXPECT_EQ(Metric(m, R"(scenefarm_exporter_collector_success{collector="gpu"})"), 1);
}

TEST_F(ExporterTest, WithoutNvmlGpuMemoryComesFromComfyUisSystemStats) {
  setenv("SCENEFARM_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
  ComfyProcess comfy;
  const std::string url = comfy.Url();
  ASSERT_FALSE(url.empty());
  StartExporter({"--comfyui-url", url, "--gpu-source", "auto"});
  const std::string m = Scrape();
  EXPECT_EQ(Metric(m, R"(scenefarm_gpu_memory_total_bytes{gpu="0",uuid=""})"), 24.0 * (1ULL << 30));
  EXPECT_TRUE(Has(
      m,
      R"(scenefarm_gpu_info{gpu="0",uuid="",name="NVIDIA GeForce RTX 3090",driver="",source="system_stats"} 1)"))
      << m;
  EXPECT_EQ(Metric(m, "scenefarm_comfyui_up{instance=\"" + url + "\"}"), 1);
  EXPECT_EQ(Metric(m, "scenefarm_comfyui_queue{instance=\"" + url + "\",state=\"pending\"}"), 0);
  EXPECT_EQ(Metric(m, "scenefarm_comfyui_device_memory_total_bytes{instance=\"" + url +
                          "\",device=\"0\",type=\"cuda\"}"),
            24.0 * (1ULL << 30));
}

TEST_F(ExporterTest, LlmProbeUpDownAndSkipped) {
  LlmStub llm;
  StartExporter({"--comfyui-url", "", "--gpu-source", "none", "--llm-url", llm.url()});
  std::string m = Scrape();
  EXPECT_EQ(Metric(m, "scenefarm_llm_up"), 1);
  EXPECT_EQ(Metric(m, "scenefarm_llm_models"), 2);
  EXPECT_EQ(Metric(m, "scenefarm_llm_probe_duration_seconds_count"), 1);
  EXPECT_EQ(Metric(m, "scenefarm_llm_probe_errors_total"), 0);
  llm.set_status(500);
  m = Scrape();
  EXPECT_EQ(Metric(m, "scenefarm_llm_up"), 0);
  EXPECT_EQ(Metric(m, "scenefarm_llm_probe_errors_total"), 1);
  EXPECT_EQ(Metric(m, "scenefarm_llm_probe_duration_seconds_count"), 2);
  exporter_.reset();
  // Seed 001's names: the full health-check URL, and the skip switch.
  llm.set_status(200);
  setenv("LOCAL_LLM_HEALTHCHECK_URL", (llm.url() + "/v1/models").c_str(), 1);
  StartExporter({"--comfyui-url", "", "--gpu-source", "none"});
  EXPECT_EQ(Metric(Scrape(), "scenefarm_llm_up"), 1);
  exporter_.reset();
  setenv("LOCAL_LLM_SKIP_HEALTHCHECK", "1", 1);
  const int before = llm.requests();
  StartExporter({"--comfyui-url", "", "--gpu-source", "none"});
  m = Scrape();
  EXPECT_FALSE(Has(m, "scenefarm_llm_up"));
  EXPECT_EQ(llm.requests(), before);
}

TEST_F(ExporterTest, AHungSourceCostsOnlyItsOwnCollectorAndHealthzReportsIt) {
  ComfyProcess comfy;
  const std::string url = comfy.Url();
  ASSERT_FALSE(url.empty());
  http::Client control(url);
  // ComfyUI accepts /queue and answers nothing for a minute; the exporter's own timeout for it
  // is longer still, so only the collector deadline can end the wait.
  auto set = control.Post(
      "/_test/faults",
      json{{"http", {{{"method", "GET"}, {"path", "/queue"}, {"delay_ms", 60000}, {"count", 0}}}}}
          .dump());
  ASSERT_TRUE(set.ok() && set->status == 200);
  StartExporter({"--comfyui-url", url, "--gpu-source", "none", "--timeout-seconds", "120",
                 "--collector-deadline-seconds", "0.5", "--stuck-seconds", "1"});
  const std::string comfy_ok = R"(scenefarm_exporter_collector_success{collector="comfyui"})";
  std::string m = Scrape();  // answered: the hung collector did not hold it up
  EXPECT_EQ(Metric(m, comfy_ok), 0) << m;
  EXPECT_FALSE(Has(m, "scenefarm_comfyui_up"));
  EXPECT_EQ(Metric(m, R"(scenefarm_exporter_collector_success{collector="queue"})"), 1);
  EXPECT_TRUE(Has(m, "scenefarm_queue_depth"));
  EXPECT_EQ(Metric(Scrape(), comfy_ok), 0);  // still running: not started twice, still 0
  ASSERT_TRUE(WaitFor([&] { return Get("/healthz").status == 503; }));
  EXPECT_NE(Get("/healthz").body.find("comfyui"), std::string::npos);
  // ComfyUI restarts (ending the hung request) without the fault: all is well again.
  set = control.Post("/_test/faults", "{}");
  ASSERT_TRUE(set.ok() && set->status == 200);
  set = control.Post("/_test/restart", R"({"down_ms": 0})");
  ASSERT_TRUE(set.ok() && set->status == 200);
  ASSERT_TRUE(WaitFor([&] { return Metric(Scrape(), comfy_ok) == 1; }, 30000ms));
  EXPECT_EQ(Get("/healthz").status, 200);
}

TEST_F(ExporterTest, EachSourceDownIsCollectorSuccessZeroAndStillA200) {
  setenv("SCENEFARM_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
  const std::string dead = "http://127.0.0.1:" + std::to_string(FreePort());
  StartExporter({"--comfyui-url", dead, "--gpu-source", "nvml", "--llm-url", dead});
  std::string m = Scrape();
  EXPECT_EQ(Metric(m, R"(scenefarm_exporter_collector_success{collector="gpu"})"), 0);
  EXPECT_EQ(Metric(m, R"(scenefarm_exporter_collector_success{collector="llm"})"), 1);
  EXPECT_EQ(Metric(m, "scenefarm_llm_up"), 0);
  EXPECT_EQ(Metric(m, "scenefarm_comfyui_up{instance=\"" + dead + "\"}"), 0);
  EXPECT_EQ(Get("/readyz").status, 200);
  redis_.Stop();
  m = Scrape();
  for (const char* c : {"queue", "workers", "scenes"})
    EXPECT_EQ(
        Metric(m, std::string("scenefarm_exporter_collector_success{collector=\"") + c + "\"}"), 0)
        << c;
  EXPECT_EQ(Metric(m, "scenefarm_redis_up"), 0);
  EXPECT_FALSE(Has(m, "scenefarm_queue_depth"));
  EXPECT_EQ(Get("/readyz").status, 503);
  EXPECT_EQ(Get("/healthz").status, 200);
  redis_.Start();
  EXPECT_TRUE(WaitFor([&] { return Metric(Scrape(), "scenefarm_redis_up") == 1; }));
}

TEST_F(ExporterTest, PromtoolFindsNothingWrongWithALiveScrape) {
  ASSERT_TRUE(queue_->Enqueue({MakeScene("a")}).ok());
  LlmStub llm;
  StartExporter({"--comfyui-url", "", "--llm-url", llm.url(), "--worker-labels"});
  const fs::path f = dir_.path() / "metrics.txt";
  std::ofstream(f) << Scrape();
  const fs::path out = dir_.path() / "promtool.txt";
  EXPECT_EQ(Shell("promtool check metrics < " + f.string() + " > " + out.string() + " 2>&1"), 0)
      << ReadFile(out);
  EXPECT_EQ(ReadFile(out), "");
  auto landing = Get("/");
  EXPECT_EQ(landing.status, 200);
  EXPECT_NE(landing.body.find("/metrics"), std::string::npos);
}

// /metrics as the exporter serves it (metrics_endpoint.h): the text format's Content-Type, the
// same page gzipped or not as the scraper asks, and prometheus-cpp's exposer_* families first,
// counting the scrapes before this one and the bytes they sent.
TEST_F(ExporterTest, MetricsGzippedOrNotAreOnePageAndTheExposerFamiliesCountScrapes) {
  for (const char* id : {"a", "b", "c"})
    ASSERT_TRUE(queue_->Enqueue({MakeScene(id)}).ok());
  StartExporter({"--comfyui-url", "", "--gpu-source", "none", "--worker-labels"});
  const RawResponse plain = RawGet(port_, "/metrics", "");
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(plain.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(plain.headers.count("content-encoding"), 0u);
  EXPECT_EQ(plain.headers.at("content-length"), std::to_string(plain.body.size()));

  const RawResponse gz = RawGet(port_, "/metrics", "Accept-Encoding: gzip, deflate\r\n");
  ASSERT_EQ(gz.status, 200);
  EXPECT_EQ(gz.headers.at("content-encoding"), "gzip");
  EXPECT_EQ(gz.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(gz.headers.at("content-length"), std::to_string(gz.body.size()));
  std::string unzipped;
  ASSERT_TRUE(Gunzip(gz.body, &unzipped));
  EXPECT_LT(gz.body.size(), unzipped.size());
  EXPECT_EQ(Series(unzipped), Series(plain.body));  // the values may move between scrapes

  // As prometheus-cpp 1.0.1's handler declares them, before every family of ours.
  EXPECT_EQ(plain.body.rfind(
                "# HELP exposer_transferred_bytes_total Transferred bytes to metrics services\n"
                "# TYPE exposer_transferred_bytes_total counter\n"
                "exposer_transferred_bytes_total 0\n"
                "# HELP exposer_scrapes_total Number of times metrics were scraped\n"
                "# TYPE exposer_scrapes_total counter\n"
                "exposer_scrapes_total 0\n"
                "# HELP exposer_request_latencies Latencies of serving scrape requests, in "
                "microseconds\n"
                "# TYPE exposer_request_latencies summary\n"
                "exposer_request_latencies_count 0\n"
                "exposer_request_latencies_sum 0\n"
                "exposer_request_latencies{quantile=\"0.5\"} Nan\n"
                "exposer_request_latencies{quantile=\"0.9\"} Nan\n"
                "exposer_request_latencies{quantile=\"0.99\"} Nan\n"
                "# HELP scenefarm_",
                0),
            0u)
      << plain.body.substr(0, 1500);
  EXPECT_EQ(Metric(unzipped, "exposer_scrapes_total"), 1);
  EXPECT_EQ(Metric(unzipped, "exposer_transferred_bytes_total"), plain.body.size());
  EXPECT_EQ(Metric(unzipped, "exposer_request_latencies_count"), 1);
  // HEAD: the headers alone, nothing collected or counted; every answer says the connection
  // closes (civetweb's keep-alive is off).
  const RawResponse head = RawGet(port_, "/metrics", "", "HEAD");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(head.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(plain.headers.at("connection"), "close");
  EXPECT_EQ(head.headers.at("connection"), "close");
  const std::string third = Scrape();
  EXPECT_EQ(Metric(third, "exposer_scrapes_total"), 2);
  EXPECT_EQ(Metric(third, "exposer_transferred_bytes_total"), plain.body.size() + gz.body.size());
  EXPECT_EQ(Metric(third, "exposer_request_latencies_count"), 2);
  EXPECT_EQ(Metric(third, R"(scenefarm_queue_depth{queue="scenes",state="pending"})"), 3);

  // Only GET; what else there is stays civetweb's (404).
  http::Client c("http://127.0.0.1:" + std::to_string(port_));
  auto post = c.Post("/metrics", "x", "text/plain");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(Get("/metrics/more").status, 404);
  EXPECT_EQ(Get("/metricsx").status, 404);
}

TEST_F(ExporterTest, TlsAndBasicAuthAcceptAndRefuseAsConfigured) {
  const fs::path d = dir_.path();
  ASSERT_EQ(
      Shell("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
            "-addext subjectAltName=IP:127.0.0.1 -keyout " +
            (d / "key.pem").string() + " -out " + (d / "cert.pem").string() + " >/dev/null 2>&1"),
      0);
  char salt[64];
  ASSERT_NE(crypt_gensalt_rn("$2b$", 5, nullptr, 0, salt, sizeof(salt)), nullptr);
  crypt_data data{};
  const std::string hash = crypt_r("s3cret", salt, &data);
  std::ofstream(d / "web.yml") << "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"
                               << "basic_auth_users:\n  prometheus: '" << hash << "'\n";
  StartExporter(
      {"--comfyui-url", "", "--gpu-source", "none", "--web-config", (d / "web.yml").string()});
  const std::string base = "https://127.0.0.1:" + std::to_string(port_);
  auto code = [&](const std::string& args) {
    const fs::path out = d / "code.txt";
    Shell("curl -s -o /dev/null -w '%{http_code}' --cacert " + (d / "cert.pem").string() + " " +
          args + " > " + out.string());
    return ReadFile(out);
  };
  EXPECT_EQ(code("-u prometheus:s3cret " + base + "/metrics"), "200");
  EXPECT_EQ(code("-u prometheus:wrong " + base + "/metrics"), "401");
  EXPECT_EQ(code("-u nobody:s3cret " + base + "/metrics"), "401");
  EXPECT_EQ(code(base + "/metrics"), "401");
  EXPECT_EQ(code("-u prometheus:s3cret " + base + "/healthz"), "200");
  // Plain HTTP on the TLS port gets no metrics.
  EXPECT_NE(code("-u prometheus:s3cret http://127.0.0.1:" + std::to_string(port_) + "/metrics"),
            "200");
}

// Issue #14 P5/P8: one malloc arena and thresholds that keep a scrape's memory by default; an
// operator's own setting, through its MALLOC_* variable or GLIBC_TUNABLES, wins.
TEST(MallocSettingsTest, TheDefaultUnlessTheOperatorSetTheirOwn) {
  const auto& arenas = exporter::DefaultMallocSettings().front();
  EXPECT_STREQ(arenas.env, "MALLOC_ARENA_MAX");
  EXPECT_EQ(arenas.value, 1);
  EXPECT_FALSE(exporter::OperatorSetsMalloc(arenas, nullptr, nullptr));
  EXPECT_FALSE(exporter::OperatorSetsMalloc(arenas, "", "glibc.malloc.tcache_count=0"));
  EXPECT_TRUE(exporter::OperatorSetsMalloc(arenas, "8", nullptr));
  EXPECT_TRUE(exporter::OperatorSetsMalloc(arenas, nullptr,
                                           "glibc.malloc.check=0:glibc.malloc.arena_max=8"));
}

TEST_F(ExporterTest, MallocSettingsAreTheExportersUnlessTheEnvironmentSetsThem) {
  const auto logged = [&](const std::string& what) {
    return WaitFor([&] {
      const std::string log = exporter_->Log();
      return log.find("exporter_listening") != std::string::npos &&
             log.find(what) != std::string::npos;
    });
  };
  // AddressSanitizer's allocator replaces glibc's and answers every mallopt with 0: the exporter
  // then says the setting was refused. This test is built as the exporter is, so it asks its own
  // process (GCC and clang spell "built with ASan" differently).
  const bool applies = mallopt(M_ARENA_MAX, 1) == 1;
  const std::string defaults =
      applies ? "arena_max=1 trim_threshold=67108864 mmap_threshold=33554432"
              : "arena_max=refused trim_threshold=refused mmap_threshold=refused";
  const std::string with_env = applies ? "arena_max=environment trim_threshold=67108864"
                                       : "arena_max=environment trim_threshold=refused";
  unsetenv("MALLOC_ARENA_MAX");
  StartExporter({"--comfyui-url", "", "--gpu-source", "none"});
  EXPECT_TRUE(logged(defaults)) << exporter_->Log();
  EXPECT_EQ(Get("/metrics").status, 200);
  exporter_.reset();
  setenv("MALLOC_ARENA_MAX", "4", 1);
  StartExporter({"--comfyui-url", "", "--gpu-source", "none"});
  unsetenv("MALLOC_ARENA_MAX");
  EXPECT_TRUE(logged(with_env)) << exporter_->Log();
  EXPECT_EQ(Get("/metrics").status, 200);
}

TEST_F(ExporterTest, ABadWebConfigIsAClearErrorAtStart) {
  std::ofstream(dir_.path() / "web.yml") << "basic_auth_users:\n  alice: plaintext\n";
  Process p({SCENEFARM_EXPORTER_BIN, "--listen", "127.0.0.1:" + std::to_string(FreePort()),
             "--web-config", (dir_.path() / "web.yml").string()},
            dir_.path() / "bad.log");
  ASSERT_TRUE(WaitFor([&] { return !p.running(); }));
  EXPECT_NE(p.Log().find("needs a bcrypt hash"), std::string::npos) << p.Log();
}

// Issue #16: every worker reads the GPUs of the ComfyUI it drives and its disks at each
// heartbeat; the exporter publishes them per instance and worker, and they vanish with it.
TEST_F(ExporterTest, WorkerReadingsArePublishedPerInstanceAndDisappearWithTheWorker) {
  const fs::path artifacts = dir_.path() / "artifacts";
  fs::create_directories(artifacts);
  // The fake NVML lists two GPUs; this worker's ComfyUI uses the second.
  auto worker = StartWorker(
      "wr1", "idle",
      {"--comfyui-url", "http://comfy-a:8188", "--artifacts-dir", artifacts.string(),
       "--comfyui-output-dir", (dir_.path() / "missing").string(), "--comfyui-gpus", "1"});
  StartExporter({"--comfyui-url", "", "--live-window-seconds", "1"});
  const std::string gpu1 =
      R"({instance="http://comfy-a:8188",gpu="1",uuid="GPU-fake-0001",worker="wr1"})";
  std::string m;
  ASSERT_TRUE(WaitFor([&] {
    m = Scrape();
    return !std::isnan(Metric(m, std::string("scenefarm_gpu_memory_free_bytes") + gpu1));
  })) << m
      << worker->Log();
  EXPECT_EQ(Metric(m, std::string("scenefarm_gpu_memory_free_bytes") + gpu1), 50.0 * (1ULL << 30));
  EXPECT_EQ(Metric(m, std::string("scenefarm_gpu_memory_total_bytes") + gpu1), 80.0 * (1ULL << 30));
  EXPECT_EQ(Metric(m, std::string("scenefarm_gpu_temperature_celsius") + gpu1), 51);
  EXPECT_DOUBLE_EQ(Metric(m, std::string("scenefarm_gpu_utilization_ratio") + gpu1), 0.41);
  EXPECT_FALSE(Has(m, R"(scenefarm_gpu_memory_free_bytes{instance="http://comfy-a:8188",gpu="0")"))
      << "GPU 0 is not this ComfyUI's";
  const std::string disk = "{worker=\"wr1\",path=\"" + artifacts.string() + "\"}";
  const double ratio = Metric(m, "scenefarm_worker_disk_free_ratio" + disk);
  EXPECT_GT(ratio, 0);
  EXPECT_LE(ratio, 1);
  EXPECT_GT(Metric(m, "scenefarm_worker_disk_free_bytes" + disk), 0);
  EXPECT_FALSE(Has(m, "scenefarm_worker_disk_free_ratio{worker=\"wr1\",path=\"" +
                          (dir_.path() / "missing").string()))
      << "an unreadable path has no figures";
  EXPECT_GE(Metric(m, R"(scenefarm_worker_readings_age_seconds{worker="wr1"})"), 0);
  // The exporter's own GPUs (the fake NVML) and the worker's share one family each.
  EXPECT_EQ(Metric(m, R"(scenefarm_gpu_memory_free_bytes{gpu="0",uuid="GPU-fake-0000"})"),
            60.0 * (1ULL << 30));
  EXPECT_EQ(m.find("# TYPE scenefarm_gpu_memory_free_bytes gauge"),
            m.rfind("# TYPE scenefarm_gpu_memory_free_bytes gauge"));
  EXPECT_EQ(Metric(m, R"(scenefarm_exporter_collector_success{collector="worker_readings"})"), 1);
  const fs::path f = dir_.path() / "metrics.txt";
  std::ofstream(f) << m;
  EXPECT_EQ(Shell("promtool check metrics < " + f.string() + " > /dev/null 2>&1"), 0);
  // The worker goes: its readings go with it.
  worker->Stop();
  ASSERT_TRUE(WaitFor([&] {
    m = Scrape();
    return !Has(m, "scenefarm_worker_disk_free_bytes{") &&
           m.find("worker=\"wr1\"") == std::string::npos;
  })) << m;
  EXPECT_EQ(Metric(m, R"(scenefarm_gpu_memory_free_bytes{gpu="0",uuid="GPU-fake-0000"})"),
            60.0 * (1ULL << 30));
}

TEST_F(ExporterTest, AForeignOrBrokenReadingsDocumentIsSkippedNotAFailedScrape) {
  ASSERT_TRUE(
      client_->Command({"ZADD", queue::kWorkersKey, std::to_string(clock_.NowMs()), "wx"}).ok());
  ASSERT_TRUE(
      client_->Command({"HSET", queue::WorkerKey("wx"), readings::kField, "{not json"}).ok());
  StartExporter({"--comfyui-url", "", "--gpu-source", "none"});
  const std::string m = Scrape();
  EXPECT_EQ(Metric(m, R"(scenefarm_exporter_collector_success{collector="worker_readings"})"), 1);
  EXPECT_FALSE(Has(m, "scenefarm_worker_disk_free_bytes"));
}

// Issue #14 P8: the workers and worker_readings collectors share one walk of the live workers a
// scrape (one HMGET a worker), and a later scrape reads anew.
TEST_F(ExporterTest, OneScrapeWalksTheLiveWorkersOnceForBothCollectors) {
  constexpr int kWorkers = 40;
  readings::HostReadings r;
  r.at_ms = clock_.NowMs();
  r.disks.push_back({"/data", "artifacts", 10.0, 100.0, ""});
  const std::string doc = r.ToJson().dump();
  for (int i = 0; i < kWorkers; ++i) {
    const std::string id = "lw" + std::to_string(i);
    ASSERT_TRUE(
        client_->Command({"ZADD", queue::kWorkersKey, std::to_string(clock_.NowMs()), id}).ok());
    ASSERT_TRUE(client_->Command({"HSET", queue::WorkerKey(id), "busy", i < 15 ? "1" : "0"}).ok());
    if (i % 4 == 0) {
      ASSERT_TRUE(client_->Command({"HSET", queue::WorkerKey(id), readings::kField, doc}).ok());
    }
  }
  // A worker gone quiet long ago is neither counted nor read.
  ASSERT_TRUE(client_->Command({"ZADD", queue::kWorkersKey, "1000", "gone"}).ok());
  ASSERT_TRUE(client_->Command({"HSET", queue::WorkerKey("gone"), "busy", "1"}).ok());
  StartExporter({"--comfyui-url", "", "--gpu-source", "none", "--worker-labels",
                 "--live-window-seconds", "3600"});
  // Calls of a command since the last CONFIG RESETSTAT, scripts' inner calls included.
  auto calls = [&](const std::string& cmd) -> int64_t {
    auto info = client_->Command({"INFO", "commandstats"});
    const std::string text = info.ok() ? info->str : "";
    std::smatch m;
    if (std::regex_search(text, m, std::regex("cmdstat_" + cmd + ":calls=(\\d+)")))
      return std::stoll(m[1]);
    return 0;
  };
  Scrape();  // the scripts are loaded
  ASSERT_TRUE(client_->Command({"CONFIG", "RESETSTAT"}).ok());
  std::string m = Scrape();
  EXPECT_EQ(calls("zrangebyscore"), 1) << "one walk for both collectors";
  EXPECT_EQ(calls("hmget"), kWorkers) << "one HMGET a live worker, busy mark and readings";
  EXPECT_EQ(Metric(m, "scenefarm_workers_live"), kWorkers);
  EXPECT_EQ(Metric(m, "scenefarm_workers_busy"), 15);
  EXPECT_EQ(Metric(m, "scenefarm_workers_idle"), kWorkers - 15);
  EXPECT_EQ(Metric(m, R"(scenefarm_worker_busy{worker="lw3"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_worker_busy{worker="lw30"})"), 0);
  EXPECT_FALSE(Has(m, R"(scenefarm_worker_busy{worker="gone"})"));
  EXPECT_EQ(Metric(m, R"(scenefarm_worker_disk_free_bytes{worker="lw8",path="/data"})"), 10);
  EXPECT_FALSE(Has(m, R"(scenefarm_worker_disk_free_bytes{worker="lw9")"));
  EXPECT_EQ(Metric(m, R"(scenefarm_exporter_collector_success{collector="workers"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_exporter_collector_success{collector="worker_readings"})"), 1);
  // What changed between two scrapes shows in the second: nothing is kept from the first.
  ASSERT_TRUE(client_->Command({"HSET", queue::WorkerKey("lw39"), "busy", "1"}).ok());
  ASSERT_TRUE(client_->Command({"HDEL", queue::WorkerKey("lw8"), readings::kField}).ok());
  m = Scrape();
  EXPECT_EQ(Metric(m, "scenefarm_workers_busy"), 16);
  EXPECT_EQ(Metric(m, R"(scenefarm_worker_busy{worker="lw39"})"), 1);
  EXPECT_FALSE(Has(m, R"(scenefarm_worker_disk_free_bytes{worker="lw8")"));
  EXPECT_EQ(Metric(m, R"(scenefarm_worker_disk_free_bytes{worker="lw4",path="/data"})"), 10);
  EXPECT_EQ(calls("zrangebyscore"), 2);
  EXPECT_EQ(calls("hmget"), 2 * kWorkers);
}

// The shared walk's bookkeeping, without an exporter: one read a scrape, nothing held after it,
// and a collector late for its scrape (past the deadline) reads for itself.
TEST(LiveWorkersTest, OneReadAScrapeNothingHeldAfterItAndLateCallersReadAnew) {
  RedisServer redis;
  redis::Client client(redis.options());
  SystemClock clock;
  ASSERT_TRUE(
      client.Command({"ZADD", queue::kWorkersKey, std::to_string(clock.NowMs()), "w1"}).ok());
  ASSERT_TRUE(client.Command({"HSET", queue::WorkerKey("w1"), "busy", "1"}).ok());
  auto shared = std::make_shared<exporter::SharedRedis>(redis.options());
  exporter::LiveWorkers live(shared, std::chrono::hours(1), false);
  auto walks = [&]() -> int64_t {
    auto info = client.Command({"INFO", "commandstats"});
    const std::string text = info.ok() ? info->str : "";
    std::smatch m;
    if (std::regex_search(text, m, std::regex("cmdstat_zrangebyscore:calls=(\\d+)")))
      return std::stoll(m[1]);
    return 0;
  };
  auto busy = [&](uint64_t scrape) -> int64_t {
    auto r = live.Get(scrape);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? (*r)->busy : -1;
  };
  EXPECT_EQ(busy(1), 1);
  EXPECT_EQ(busy(1), 1);
  EXPECT_EQ(walks(), 1) << "the second caller of scrape 1 shares the first's read";
  EXPECT_TRUE(live.Holding());
  live.EndScrape(1);
  EXPECT_FALSE(live.Holding()) << "nothing is held between scrapes";
  ASSERT_TRUE(client.Command({"HSET", queue::WorkerKey("w1"), "busy", "0"}).ok());
  EXPECT_EQ(busy(1), 0) << "late for scrape 1: read anew";
  EXPECT_FALSE(live.Holding());
  EXPECT_EQ(busy(2), 0);
  EXPECT_EQ(walks(), 3);
  ASSERT_TRUE(client.Command({"HSET", queue::WorkerKey("w1"), "busy", "1"}).ok());
  EXPECT_EQ(busy(3), 1);
  EXPECT_EQ(busy(2), 1) << "late for scrape 2 (3 began): read anew";
  EXPECT_EQ(busy(3), 1);
  EXPECT_EQ(walks(), 5);
  // Only one of a scrape's collectors asked (the other still ran from before): EndScrape still
  // lets the snapshot go.
  live.EndScrape(3);
  EXPECT_FALSE(live.Holding());
  EXPECT_EQ(busy(0), 1) << "outside a CollectorSet: always read";
  EXPECT_FALSE(live.Holding());
}

// Issue #16: contract violations a worker found were only logged.
TEST_F(ExporterTest, ContractViolationsAWorkerFindsAreCounted) {
  const fs::path artifacts = dir_.path() / "artifacts";
  // A run whose earlier scene left telemetry that breaks the contract.
  fs::create_directories(artifacts / "broken" / "s0");
  std::ofstream(artifacts / "broken" / "s0" / "telemetry.json")
      << R"({"SceneId": "s0", "Status": "succeeded", "Telemetry": {}})";
  Scene s = MakeScene("s1");
  s.run = "broken";
  ASSERT_TRUE(queue_->Enqueue({s}).ok());
  StartExporter({"--comfyui-url", "", "--gpu-source", "none"});
  EXPECT_EQ(Metric(Scrape(), "scenefarm_telemetry_contract_violations_total"), 0);
  auto worker = StartWorker("wv", "scenes", {"--artifacts-dir", artifacts.string()});
  ASSERT_TRUE(WaitFor([&] { return fs::exists(artifacts / "broken" / "artifact-metadata.json"); }))
      << worker->Log();
  double n = 0;
  ASSERT_TRUE(WaitFor([&] {
    n = Metric(Scrape(), "scenefarm_telemetry_contract_violations_total");
    return n > 0;
  })) << worker->Log();
  EXPECT_EQ(n, static_cast<double>(telemetry::ValidateRun(artifacts / "broken").size()));
}

TEST_F(ExporterTest, LlmGenerationProbeMeasuresPastTheScrapeTimeoutAndCountsFailures) {
  LlmStub llm;
  llm.set_chat_delay_ms(2500);  // slower than the scrape's 2 s timeout (StartExporter)
  StartExporter({"--comfyui-url", "", "--gpu-source", "none", "--llm-url", llm.url(), "--llm-model",
                 "qwen2.5-7b-instruct", "--llm-generation-interval-seconds", "0.1",
                 "--llm-generation-timeout-seconds", "30"});
  std::string m;
  ASSERT_TRUE(WaitFor([&] {
    m = Scrape();
    return Metric(m, "scenefarm_llm_generation_duration_seconds_count") >= 1;
  })) << m;
  EXPECT_EQ(Metric(m, R"(scenefarm_llm_generation_up{model="qwen2.5-7b-instruct"})"), 1);
  EXPECT_EQ(Metric(m, "scenefarm_llm_generation_errors_total"), 0);
  EXPECT_GE(Metric(m, "scenefarm_llm_generation_duration_seconds_sum"), 2.5);
  EXPECT_EQ(Metric(m, R"(scenefarm_llm_generation_duration_seconds_bucket{le="2.5"})"), 0);
  EXPECT_EQ(Metric(m, R"(scenefarm_llm_model_info{model="qwen2.5-7b-instruct"})"), 1);
  EXPECT_EQ(Metric(m, R"(scenefarm_llm_model_info{model="llama-3.1-8b"})"), 1);
  const json req = json::parse(llm.last_chat_body(), nullptr, false);
  EXPECT_EQ(req["model"], "qwen2.5-7b-instruct");
  EXPECT_EQ(req["max_tokens"], 1);
  llm.set_chat_delay_ms(0);
  llm.set_chat_status(503);
  ASSERT_TRUE(WaitFor([&] {
    m = Scrape();
    return Metric(m, "scenefarm_llm_generation_errors_total") >= 1 &&
           Metric(m, R"(scenefarm_llm_generation_up{model="qwen2.5-7b-instruct"})") == 0;
  })) << m;
  EXPECT_EQ(Metric(m, "scenefarm_llm_up"), 1);  // GET /v1/models still answers
}

TEST_F(ExporterTest, ALlmGenerationPastItsTimeoutIsAnError) {
  LlmStub llm;
  llm.set_chat_delay_ms(60000);
  StartExporter({"--comfyui-url", "", "--gpu-source", "none", "--llm-url", llm.url(), "--llm-model",
                 "m", "--llm-generation-timeout-seconds", "0.3"});
  std::string m;
  ASSERT_TRUE(WaitFor([&] {
    m = Scrape();
    return Metric(m, "scenefarm_llm_generation_errors_total") >= 1;
  })) << m;
  EXPECT_EQ(Metric(m, R"(scenefarm_llm_generation_up{model="m"})"), 0);
  EXPECT_GE(Metric(m, "scenefarm_llm_generation_duration_seconds_sum"), 0.3);
  // The exporter stops at once although a completion is in flight.
  EXPECT_EQ(exporter_->Stop(), 0);
}

// docs/metrics.md lists exactly the families of scenefarm/metric_names.h, and a scrape with
// every source on serves no other.
TEST_F(ExporterTest, DocsListEveryFamilyAndTheExporterServesNoOther) {
  std::set<std::string> documented;
  std::istringstream doc(ReadFile(fs::path(SCENEFARM_SOURCE_DIR) / "docs" / "metrics.md"));
  std::string line;
  while (std::getline(doc, line)) {
    if (line.rfind("| `scenefarm_", 0) == 0)
      documented.insert(line.substr(3, line.find('`', 3) - 3));
  }
  std::set<std::string> named;
  for (auto n : metric_names::kAllFamilies)
    named.insert(std::string(n));
  EXPECT_EQ(documented, named);

  ComfyProcess comfy;
  const std::string url = comfy.Url();
  ASSERT_FALSE(url.empty());
  LlmStub llm;
  auto worker = StartWorker("wd", "idle", {"--artifacts-dir", dir_.path().string()});
  ASSERT_TRUE(queue_->Enqueue({MakeScene("a")}).ok());
  StartExporter(
      {"--comfyui-url", url, "--llm-url", llm.url(), "--llm-model", "m", "--worker-labels"});
  std::string m;
  ASSERT_TRUE(WaitFor([&] {
    m = Scrape();
    return Has(m, "scenefarm_worker_disk_free_bytes") &&
           Has(m, "scenefarm_llm_generation_duration_seconds_count");
  })) << m;
  for (const auto& f : DeclaredFamilies(m)) {
    if (f.rfind("exposer_", 0) == 0) continue;  // prometheus-cpp's own
    EXPECT_TRUE(named.count(f)) << f << " is served but not in metric_names.h / docs/metrics.md";
  }
}

}  // namespace
}  // namespace scenefarm::testing
