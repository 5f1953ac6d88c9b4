// The Prometheus text format 0.0.4, written straight into one std::string (issue #14 P8, P5).
//
// The output is byte for byte what prometheus-cpp 1.0.1's TextSerializer writes for the same
// families (tests/unit/exporter/metrics_text_test.cpp holds the two side by side), so that
// nothing a scraper, a dashboard or a test sees changes. TextSerializer writes a character at a
// time into an ostringstream, which doubles its buffer while it grows and is then copied out: at
// 10,000 workers that was most of the exporter's own CPU per scrape and three copies of a 1 MB
// page at its peak. Here the caller reserves the string once (from the previous scrape's size)
// and numbers go through std::to_chars, integers without any floating-point formatting.
//
// What TextSerializer 1.0.1 does, and so what this does:
// - "# HELP name help" (help as it is: not escaped) when help is not empty, then
//   "# TYPE name counter|gauge|summary|untyped|histogram";
// - label values with \ " and newline escaped as \\ \" \n;
// - doubles as "%.16g" (max_digits10 - 1 significant digits) in the C locale; NaN "Nan",
//   infinities "+Inf" and "-Inf"; counts (uint64) as integers;
// - " timestamp_ms" after the value when it is not 0;
// - summaries: _count, _sum, then one {quantile="q"} line per quantile; histograms: _count,
//   _sum, _bucket{le="bound"} lines, and a le="+Inf" bucket with the count when the last bound
//   is not +Inf.
#pragma once

#include <string>
#include <vector>

#include <prometheus/metric_family.h>

namespace scenefarm::exporter {

// Appends `families` in the text format to *out (which the caller may have reserved).
void AppendMetricsText(const std::vector<prometheus::MetricFamily>& families, std::string* out);
void AppendMetricsText(const prometheus::MetricFamily& family, std::string* out);

// Appends one double as TextSerializer prints a sample value or an le/quantile label.
void AppendMetricsDouble(double value, std::string* out);

}  // namespace scenefarm::exporter
