// llm: an OpenAI-compatible endpoint (LM Studio, Ollama): GET <url>/v1/models at each scrape.
// up, a probe-duration histogram and an error counter; the histogram and counter live in this
// exporter (they describe its own probes) and restart with it.
#include <chrono>
#include <limits>
#include <mutex>

#include <nlohmann/json.hpp>

#include "collector.h"
#include "families.h"
#include "scenefarm/http_client.h"

namespace scenefarm::exporter {
namespace {

using json = nlohmann::json;

const std::vector<double> kProbeBuckets = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120};

class LlmCollector : public Collector {
 public:
  LlmCollector(std::string url, std::chrono::milliseconds timeout)
      : Collector("llm"), url_(std::move(url)), timeout_(timeout) {
    while (!url_.empty() && url_.back() == '/')
      url_.pop_back();
    // Accept both the base URL and the seed's full health-check URL (.../v1/models).
    const std::string suffix = "/v1/models";
    if (url_.size() > suffix.size() &&
        url_.compare(url_.size() - suffix.size(), suffix.size(), suffix) == 0)
      url_.resize(url_.size() - suffix.size());
    for (double b : kProbeBuckets)
      buckets_[b] = 0;
  }

  Result<Families> Scrape() const override {
    const auto t0 = std::chrono::steady_clock::now();
    http::Client c(url_, {timeout_, timeout_});
    auto r = c.Get("/v1/models");
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    json body = r.ok() && r->status == 200 ? json::parse(r->body, nullptr, false) : json();
    const bool up = body.is_object() && body.contains("data") && body["data"].is_array();
    std::lock_guard<std::mutex> lock(mu_);
    ++count_;
    sum_ += secs;
    for (auto& [b, n] : buckets_) {
      if (secs <= b) {
        ++n;
        break;
      }
    }
    if (secs > kProbeBuckets.back()) buckets_[std::numeric_limits<double>::infinity()]++;
    if (!up) ++errors_;
    Families out;
    out.push_back(Gauge("scenefarm_llm_up", "1 when the LLM endpoint answered GET /v1/models.")
                      .Add({}, up)
                      .Take());
    out.push_back(Histogram("scenefarm_llm_probe_duration_seconds",
                            "Duration of GET /v1/models probes by this exporter.")
                      .AddHistogram({}, buckets_, sum_, count_)
                      .Take());
    out.push_back(Counter("scenefarm_llm_probe_errors_total",
                          "Probes of GET /v1/models that failed or answered no model list.")
                      .Add({}, static_cast<double>(errors_))
                      .Take());
    if (up) {
      out.push_back(Gauge("scenefarm_llm_models", "Models the LLM endpoint lists.")
                        .Add({}, static_cast<double>(body["data"].size()))
                        .Take());
    }
    return out;
  }

 private:
  std::string url_;
  std::chrono::milliseconds timeout_;
  mutable std::mutex mu_;
  mutable std::map<double, uint64_t> buckets_;
  mutable double sum_ = 0;
  mutable uint64_t count_ = 0;
  mutable uint64_t errors_ = 0;
};

}  // namespace

std::unique_ptr<Collector> MakeLlmCollector(std::string url, std::chrono::milliseconds timeout) {
  return std::make_unique<LlmCollector>(std::move(url), timeout);
}

}  // namespace scenefarm::exporter
