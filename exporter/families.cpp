#include "families.h"

#include <cmath>
#include <limits>

namespace scenefarm::exporter {

Family::Family(std::string name, std::string help, prometheus::MetricType type) {
  family_.name = std::move(name);
  family_.help = std::move(help);
  family_.type = type;
}

Family& Family::Add(Labels labels, double value) {
  prometheus::ClientMetric& m = family_.metric.emplace_back();
  m.label = std::move(labels);
  if (family_.type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  return *this;
}

Family& Family::AddHistogram(Labels labels, const std::map<double, uint64_t>& buckets, double sum,
                             uint64_t count) {
  prometheus::ClientMetric& m = family_.metric.emplace_back();
  m.label = std::move(labels);
  m.histogram.bucket.reserve(buckets.size() + 1);
  uint64_t cumulative = 0;
  for (const auto& [bound, n] : buckets) {
    if (std::isinf(bound)) continue;  // +Inf is the count, written by the serializer
    cumulative += n;
    m.histogram.bucket.push_back({cumulative, bound});
  }
  m.histogram.bucket.push_back({count, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = count;
  m.histogram.sample_sum = sum;
  return *this;
}

void MergeSameName(std::vector<prometheus::MetricFamily>* families) {
  std::vector<prometheus::MetricFamily> out;
  std::map<std::string, size_t> seen;
  for (auto& f : *families) {
    auto it = seen.find(f.name);
    if (it == seen.end()) {
      seen.emplace(f.name, out.size());
      out.push_back(std::move(f));
      continue;
    }
    auto& into = out[it->second].metric;
    into.insert(into.end(), std::make_move_iterator(f.metric.begin()),
                std::make_move_iterator(f.metric.end()));
  }
  *families = std::move(out);
}

void ParseBucketHash(const std::map<std::string, std::string>& hash,
                     const std::vector<double>& bounds, std::map<double, uint64_t>* buckets,
                     double* sum, uint64_t* count) {
  *sum = 0;
  *count = 0;
  for (double b : bounds)
    (*buckets)[b] += 0;
  for (const auto& [field, value] : hash) {
    try {
      if (field == "sum") {
        *sum = std::stod(value);
      } else if (field == "count") {
        *count = std::stoull(value);
      } else if (field == "+Inf") {
        (*buckets)[std::numeric_limits<double>::infinity()] += std::stoull(value);
      } else {
        (*buckets)[std::stod(field)] += std::stoull(value);
      }
    } catch (const std::exception&) {
      // A foreign field in our hash: ignored rather than failing the scrape.
    }
  }
}

}  // namespace scenefarm::exporter
