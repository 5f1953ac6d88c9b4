// Building Prometheus metric families by hand: the exporter is stateless, so every scrape turns
// what it read into families (prometheus-cpp's MetricFamily), not into long-lived metric objects.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "scenefarm/metric_names.h"

namespace scenefarm::exporter {

namespace names = metric_names;  // every family name comes from scenefarm/metric_names.h

// prometheus-cpp's own label type, so that a sample's labels are built once, in place, and moved
// into the family (at 10,000 series a scrape, every copy counts: issue #14 P8).
using Labels = std::vector<prometheus::ClientMetric::Label>;

class Family {
 public:
  Family(std::string name, std::string help, prometheus::MetricType type);
  Family& Add(Labels labels, double value);  // gauge or counter sample
  // Room for n more samples: a family whose size is known grows its vector once.
  Family& Reserve(size_t n) {
    family_.metric.reserve(family_.metric.size() + n);
    return *this;
  }
  // A histogram from non-cumulative bucket counts keyed by upper bound ("+Inf" included), as
  // the queue scripts keep them in Redis, plus sum and count.
  Family& AddHistogram(Labels labels, const std::map<double, uint64_t>& buckets, double sum,
                       uint64_t count);
  bool empty() const { return family_.metric.empty(); }
  size_t size() const { return family_.metric.size(); }
  prometheus::MetricFamily Take() { return std::move(family_); }

 private:
  prometheus::MetricFamily family_;
};

inline Family Gauge(std::string name, std::string help) {
  return Family(std::move(name), std::move(help), prometheus::MetricType::Gauge);
}
inline Family Counter(std::string name, std::string help) {
  return Family(std::move(name), std::move(help), prometheus::MetricType::Counter);
}
inline Family Histogram(std::string name, std::string help) {
  return Family(std::move(name), std::move(help), prometheus::MetricType::Histogram);
}

// Folds families of the same name into the first of them (their samples in order), so that two
// collectors serving one family (the exporter's own GPU and the workers' GPUs) print it once.
// REQUIRES: families of one name have one type.
void MergeSameName(std::vector<prometheus::MetricFamily>* families);

// Parses a Redis bucket hash (field -> count; "sum", "count" and "+Inf" among them). Every
// bound of `bounds` is present in *buckets, zero when the hash has none: a histogram keeps the
// same series from its first scrape on.
void ParseBucketHash(const std::map<std::string, std::string>& hash,
                     const std::vector<double>& bounds, std::map<double, uint64_t>* buckets,
                     double* sum, uint64_t* count);

}  // namespace scenefarm::exporter
