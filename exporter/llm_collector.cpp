// llm: an OpenAI-compatible endpoint (LM Studio, Ollama). GET <url>/v1/models at each scrape:
// up, a probe-duration histogram, an error counter, and the served models (count, and names as
// a bounded info family). With a model configured, a generation probe -- a one-token chat
// completion -- runs on a thread of its own at its own interval and timeout (a generation may
// take minutes; a scrape must not), and the scrape publishes what it last measured. Histograms
// and counters describe this exporter's own probes and restart with it.
#include <chrono>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "collector.h"
#include "families.h"
#include "scenefarm/http_client.h"
#include "scenefarm/log.h"

namespace scenefarm::exporter {
namespace {

using json = nlohmann::json;

const std::vector<double> kProbeBuckets = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};
// Generation takes longer: 120 s is seed 000's latency threshold.
const std::vector<double> kGenerationBuckets = {0.25, 0.5, 1,   2.5, 5,   10,
                                                30,   60,  120, 180, 300, 600};
constexpr size_t kMaxModels = 32;      // model names published (the rest counted only)
constexpr size_t kMaxModelName = 128;  // bytes of each name

// One probe's measurements: a histogram (non-cumulative buckets, as families.h wants) and errors.
class ProbeStats {
 public:
  explicit ProbeStats(const std::vector<double>& bounds) {
    for (double b : bounds)
      buckets_[b] = 0;
    buckets_[std::numeric_limits<double>::infinity()] = 0;
  }
  void Observe(double seconds, bool ok) {
    ++count_;
    sum_ += seconds;
    buckets_.lower_bound(seconds)->second++;  // the first bound >= seconds (+Inf at worst)
    if (!ok) ++errors_;
    up_ = ok;
  }
  void AddTo(Family& histogram, Family& errors) const {
    histogram.AddHistogram({}, buckets_, sum_, count_);
    errors.Add({}, static_cast<double>(errors_));
  }
  bool up() const { return up_; }
  uint64_t count() const { return count_; }

 private:
  std::map<double, uint64_t> buckets_;
  double sum_ = 0;
  uint64_t count_ = 0, errors_ = 0;
  bool up_ = false;
};

std::string BaseUrl(std::string url) {
  while (!url.empty() && url.back() == '/')
    url.pop_back();
  // Accept both the base URL and the seed's full health-check URL (.../v1/models).
  const std::string suffix = "/v1/models";
  if (url.size() > suffix.size() &&
      url.compare(url.size() - suffix.size(), suffix.size(), suffix) == 0)
    url.resize(url.size() - suffix.size());
  return url;
}

// A completion counts when the server answers 200 with at least one choice.
bool CompletionAnswered(const Result<http::Response>& r) {
  if (!r.ok() || r->status != 200) return false;
  const json body = json::parse(r->body, nullptr, false);
  return body.is_object() && body.contains("choices") && body["choices"].is_array() &&
         !body["choices"].empty();
}

// The generation probe's thread: POST /v1/chat/completions, one token, then wait.
class GenerationProbe {
 public:
  GenerationProbe(std::string url, LlmGeneration g)
      : url_(std::move(url)), g_(std::move(g)), stats_(kGenerationBuckets) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~GenerationProbe() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    stop_flag_ = true;  // cancels a request in flight
    cv_.notify_all();
    thread_.join();
  }
  // Appends the probe's families (nothing before its first probe ends).
  void AddTo(Families& out) const {
    std::lock_guard<std::mutex> lock(mu_);
    if (stats_.count() == 0) return;
    Family up = Gauge(names::kLlmGenerationUp,
                      "1 when the last generation probe (a one-token chat completion) answered.");
    Family hist = Histogram(names::kLlmGenerationDuration,
                            "Duration of this exporter's generation probes, failed ones included.");
    Family errors = Counter(names::kLlmGenerationErrors,
                            "Generation probes that failed, answered no choice or timed out.");
    up.Add({{"model", g_.model}}, stats_.up() ? 1 : 0);
    stats_.AddTo(hist, errors);
    for (Family* f : {&up, &hist, &errors})
      out.push_back(f->Take());
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!stop_) {
      lock.unlock();
      const auto t0 = std::chrono::steady_clock::now();
      http::Client c(
          url_, {std::min(g_.timeout, std::chrono::milliseconds(10000)), g_.timeout, &stop_flag_});
      const json req = {{"model", g_.model},
                        {"messages", {{{"role", "user"}, {"content", "Reply with OK."}}}},
                        {"max_tokens", 1},
                        {"temperature", 0},
                        {"stream", false}};
      auto r = c.Post("/v1/chat/completions", req.dump());
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!r.ok() && r.status().code() == StatusCode::kAborted) break;  // shutting down
      const bool ok = CompletionAnswered(r);
      if (!ok) {
        log::Debug("llm_generation_failed", {{"model", g_.model},
                                             {"error", r.ok() ? "HTTP " + std::to_string(r->status)
                                                              : r.status().ToString()}});
      }
      lock.lock();
      stats_.Observe(secs, ok);
      cv_.wait_for(lock, g_.interval, [this] { return stop_; });
    }
  }

  const std::string url_;
  const LlmGeneration g_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::atomic<bool> stop_flag_{false};
  ProbeStats stats_;  // guarded by mu_
  std::thread thread_;
};

class LlmCollector : public Collector {
 public:
  LlmCollector(std::string url, std::chrono::milliseconds timeout, LlmGeneration generation)
      : Collector("llm"), url_(BaseUrl(std::move(url))), timeout_(timeout), stats_(kProbeBuckets) {
    if (!generation.model.empty())
      generation_ = std::make_unique<GenerationProbe>(url_, std::move(generation));
  }
  Result<Families> Scrape() const override {
    const auto t0 = std::chrono::steady_clock::now();
    http::Client c(url_, {timeout_, timeout_});
    auto r = c.Get("/v1/models");
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    json body = r.ok() && r->status == 200 ? json::parse(r->body, nullptr, false) : json();
    const bool up = body.is_object() && body.contains("data") && body["data"].is_array();
    Families out;
    Family hist =
        Histogram(names::kLlmProbeDuration, "Duration of GET /v1/models probes by this exporter.");
    Family errors = Counter(names::kLlmProbeErrors,
                            "Probes of GET /v1/models that failed or answered no model list.");
    {
      std::lock_guard<std::mutex> lock(mu_);
      stats_.Observe(secs, up);
      stats_.AddTo(hist, errors);
    }
    out.push_back(Gauge(names::kLlmUp, "1 when the LLM endpoint answered GET /v1/models.")
                      .Add({}, up)
                      .Take());
    out.push_back(hist.Take());
    out.push_back(errors.Take());
    if (up) AddModels(body["data"], out);
    if (generation_) generation_->AddTo(out);
    return out;
  }

 private:
  // The count of models served, and the first kMaxModels names as an info family.
  static void AddModels(const json& data, Families& out) {
    out.push_back(Gauge(names::kLlmModels, "Models the LLM endpoint lists.")
                      .Add({}, static_cast<double>(data.size()))
                      .Take());
    Family info =
        Gauge(names::kLlmModelInfo,
              "1 per model the LLM endpoint lists (the first 32, names cut to 128 bytes).");
    std::set<std::string> seen;
    for (const auto& m : data) {
      if (seen.size() >= kMaxModels) break;
      if (!m.is_object() || !m.contains("id") || !m["id"].is_string()) continue;
      const std::string id = m["id"].get<std::string>().substr(0, kMaxModelName);
      if (seen.insert(id).second) info.Add({{"model", id}}, 1);
    }
    if (!info.empty()) out.push_back(info.Take());
  }

  std::string url_;
  std::chrono::milliseconds timeout_;
  mutable std::mutex mu_;
  mutable ProbeStats stats_;  // guarded by mu_
  std::unique_ptr<GenerationProbe> generation_;
};

}  // namespace

std::unique_ptr<Collector> MakeLlmCollector(std::string url, std::chrono::milliseconds timeout,
                                            LlmGeneration generation) {
  return std::make_unique<LlmCollector>(std::move(url), timeout, std::move(generation));
}

}  // namespace scenefarm::exporter
