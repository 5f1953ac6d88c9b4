#include "metrics_text.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

namespace scenefarm::exporter {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Room for any double at 16 significant digits ("-1.234567890123456e-308": 23) and any int64.
constexpr size_t kNumberChars = 32;

// Writes `v` as TextSerializer does (see metrics_text.h) into buf; returns the end.
char* FormatDouble(double v, char* buf) {
  if (std::isnan(v)) return std::char_traits<char>::copy(buf, "Nan", 3) + 3;
  if (std::isinf(v)) return std::char_traits<char>::copy(buf, v < 0 ? "-Inf" : "+Inf", 4) + 4;
  // Most values on the page are whole numbers (counts, states, bytes). "%.16g" prints a whole
  // number below 1e16 in full, as an integer would be: skip the floating-point formatting.
  if (v >= -1e15 && v <= 1e15) {
    const auto i = static_cast<int64_t>(v);
    if (static_cast<double>(i) == v) {
      if (i == 0 && std::signbit(v)) {  // -0.0: "%g" keeps the sign
        buf[0] = '-';
        buf[1] = '0';
        return buf + 2;
      }
      return std::to_chars(buf, buf + kNumberChars, i).ptr;
    }
  }
  // std::to_chars with a precision is specified as printf's "%.*g" in the C locale, which is
  // what the ostream with precision(max_digits10 - 1) and the classic locale writes.
  return std::to_chars(buf, buf + kNumberChars, v, std::chars_format::general,
                       std::numeric_limits<double>::max_digits10 - 1)
      .ptr;
}

void AppendDouble(double v, std::string* out) {
  char buf[kNumberChars];
  out->append(buf, FormatDouble(v, buf) - buf);
}

template <typename Int>
void AppendInt(Int v, std::string* out) {
  char buf[kNumberChars];
  out->append(buf, std::to_chars(buf, buf + sizeof(buf), v).ptr - buf);
}

// A label value with \ " and newline escaped; runs without any are appended whole.
void AppendEscaped(const std::string& s, std::string* out) {
  const char* run = s.data();
  const char* const end = s.data() + s.size();
  for (const char* p = run; p != end; ++p) {
    const char c = *p;
    if (c == '\\' || c == '"' || c == '\n') {
      out->append(run, p - run);
      out->push_back('\\');
      out->push_back(c == '\n' ? 'n' : c);
      run = p + 1;
    }
  }
  out->append(run, end - run);
}

// a="x",b="y" (no braces).
void AppendLabels(const std::vector<ClientMetric::Label>& labels, std::string* out) {
  bool first = true;
  for (const auto& l : labels) {
    if (!first) out->push_back(',');
    first = false;
    out->append(l.name);
    out->append("=\"", 2);
    AppendEscaped(l.value, out);
    out->push_back('"');
  }
}

// " timestamp" when set, and the end of the line.
void AppendTail(const ClientMetric& m, std::string* out) {
  if (m.timestamp_ms != 0) {
    out->push_back(' ');
    AppendInt(m.timestamp_ms, out);
  }
  out->push_back('\n');
}

// name{labels} for a family whose samples are one line each (counter, gauge, untyped).
void AppendSimple(const MetricFamily& f, const ClientMetric& m, double value, std::string* out) {
  out->append(f.name);
  if (!m.label.empty()) {
    out->push_back('{');
    AppendLabels(m.label, out);
    out->push_back('}');
  }
  out->push_back(' ');
  AppendDouble(value, out);
  AppendTail(m, out);
}

// The lines of a summary or a histogram share their labels: they are escaped once per sample
// into `labels` (a="x",b="y"), and each line is name suffix {labels[,extra="value"]}.
class MultiLine {
 public:
  MultiLine(const MetricFamily& f, std::string* scratch, std::string* out)
      : name_(f.name), labels_(*scratch), out_(*out) {}
  void Start(const ClientMetric& m) {
    labels_.clear();
    AppendLabels(m.label, &labels_);
  }
  // name suffix{labels} ; then the caller appends the value and the tail.
  void Head(std::string_view suffix) {
    out_.append(name_);
    out_.append(suffix);
    if (!labels_.empty()) {
      out_.push_back('{');
      out_.append(labels_);
      out_.push_back('}');
    }
    out_.push_back(' ');
  }
  // name suffix{labels,extra="value"} (value already formatted: nothing in it needs escaping).
  void Head(std::string_view suffix, std::string_view extra, std::string_view value) {
    out_.append(name_);
    out_.append(suffix);
    out_.push_back('{');
    if (!labels_.empty()) {
      out_.append(labels_);
      out_.push_back(',');
    }
    out_.append(extra);
    out_.append("=\"", 2);
    out_.append(value);
    out_.append("\"} ", 3);
  }
  void Head(std::string_view suffix, std::string_view extra, double value) {
    char buf[kNumberChars];
    Head(suffix, extra, std::string_view(buf, FormatDouble(value, buf) - buf));
  }

 private:
  const std::string& name_;
  std::string& labels_;
  std::string& out_;
};

// A summary's or histogram's first two lines, as TextSerializer writes them: _count, _sum.
void AppendCountAndSum(const ClientMetric& m, MultiLine& line, uint64_t count, double sum,
                       std::string* out) {
  line.Start(m);
  line.Head("_count");
  AppendInt(count, out);
  AppendTail(m, out);
  line.Head("_sum");
  AppendDouble(sum, out);
  AppendTail(m, out);
}

void AppendSummary(const ClientMetric& m, MultiLine& line, std::string* out) {
  const auto& s = m.summary;
  AppendCountAndSum(m, line, s.sample_count, s.sample_sum, out);
  for (const auto& q : s.quantile) {
    line.Head("", "quantile", q.quantile);
    AppendDouble(q.value, out);
    AppendTail(m, out);
  }
}

void AppendHistogram(const ClientMetric& m, MultiLine& line, std::string* out) {
  const auto& h = m.histogram;
  AppendCountAndSum(m, line, h.sample_count, h.sample_sum, out);
  double last = -std::numeric_limits<double>::infinity();
  for (const auto& b : h.bucket) {
    line.Head("_bucket", "le", b.upper_bound);
    last = b.upper_bound;
    AppendInt(b.cumulative_count, out);
    AppendTail(m, out);
  }
  if (last != std::numeric_limits<double>::infinity()) {  // NaN included, as TextSerializer
    line.Head("_bucket", "le", "+Inf");
    AppendInt(h.sample_count, out);
    AppendTail(m, out);
  }
}

void AppendTypeLine(const MetricFamily& f, std::string_view type, std::string* out) {
  out->append("# TYPE ", 7);
  out->append(f.name);
  out->push_back(' ');
  out->append(type);
  out->push_back('\n');
}

}  // namespace

void AppendMetricsDouble(double value, std::string* out) {
  AppendDouble(value, out);
}

void AppendMetricsText(const MetricFamily& f, std::string* out) {
  if (!f.help.empty()) {
    out->append("# HELP ", 7);
    out->append(f.name);
    out->push_back(' ');
    out->append(f.help);
    out->push_back('\n');
  }
  switch (f.type) {
    case MetricType::Counter:
      AppendTypeLine(f, "counter", out);
      for (const auto& m : f.metric)
        AppendSimple(f, m, m.counter.value, out);
      break;
    case MetricType::Gauge:
      AppendTypeLine(f, "gauge", out);
      for (const auto& m : f.metric)
        AppendSimple(f, m, m.gauge.value, out);
      break;
    case MetricType::Untyped:
      AppendTypeLine(f, "untyped", out);
      for (const auto& m : f.metric)
        AppendSimple(f, m, m.untyped.value, out);
      break;
    case MetricType::Summary: {
      AppendTypeLine(f, "summary", out);
      std::string labels;
      MultiLine line(f, &labels, out);
      for (const auto& m : f.metric)
        AppendSummary(m, line, out);
      break;
    }
    case MetricType::Histogram: {
      AppendTypeLine(f, "histogram", out);
      std::string labels;
      MultiLine line(f, &labels, out);
      for (const auto& m : f.metric)
        AppendHistogram(m, line, out);
      break;
    }
  }
}

void AppendMetricsText(const std::vector<MetricFamily>& families, std::string* out) {
  for (const auto& f : families)
    AppendMetricsText(f, out);
}

}  // namespace scenefarm::exporter
