// metrics_text.h against prometheus-cpp's TextSerializer, which it replaces on /metrics: byte for
// byte the same page for every metric type, escapes, special and ordinary numbers, timestamps;
// and metrics_endpoint.h's gzip and Accept-Encoding reading.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <prometheus/text_serializer.h>

#include "metrics_endpoint.h"
#include "metrics_text.h"
#include "support/gzip.h"

namespace scenefarm::exporter {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::string Theirs(const std::vector<MetricFamily>& families) {
  return prometheus::TextSerializer().Serialize(families);
}
std::string Ours(const std::vector<MetricFamily>& families) {
  std::string out;
  AppendMetricsText(families, &out);
  return out;
}

// Every value worth a look: integers (the fast path and its edges), fractions at and past 16
// significant digits, tiny, huge, subnormal, negative zero, NaN and both infinities.
const std::vector<double>& Values() {
  static const std::vector<double> v = {0.0,
                                        -0.0,
                                        1,
                                        -1,
                                        42,
                                        0.5,
                                        0.1,
                                        1.0 / 3,
                                        -2.0 / 3,
                                        0.30000000000000004,
                                        4.35,
                                        123.456,
                                        1e-5,
                                        1e-7,
                                        -1.5e-300,
                                        5e-324,
                                        2.5e-320,
                                        999999999999999,
                                        1e15,
                                        -1e15,
                                        1e15 + 1,
                                        9999999999999998,
                                        1e16,
                                        1e16 + 2,
                                        9007199254740993.0,
                                        -9007199254740992.0,
                                        1e17,
                                        1e21,
                                        1e22,
                                        1.7976931348623157e308,
                                        -1.7976931348623157e308,
                                        9.223372036854776e18,
                                        -9.223372036854776e18,
                                        1.8446744073709552e19,
                                        1712345678.123456,
                                        1712345678.0,
                                        0.000123456789012345678,
                                        kNaN,
                                        -kNaN,
                                        kInf,
                                        -kInf};
  return v;
}

MetricFamily Simple(const std::string& name, MetricType type, const std::string& help) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  for (const double v : Values()) {
    ClientMetric m;
    m.label = {{"queue", "q1"}, {"worker", "w-" + std::to_string(f.metric.size())}};
    m.counter.value = v;
    m.gauge.value = v;
    m.untyped.value = v;
    f.metric.push_back(m);
  }
  return f;
}

TEST(MetricsTextTest, CountersGaugesAndUntypedAsTextSerializer) {
  const std::vector<MetricFamily> families = {
      Simple("scenefarm_c_total", MetricType::Counter, "A counter."),
      Simple("scenefarm_g", MetricType::Gauge, "A gauge."),
      Simple("scenefarm_u", MetricType::Untyped, "")};
  EXPECT_EQ(Ours(families), Theirs(families));
}

TEST(MetricsTextTest, LabelValuesAndHelpAsTextSerializer) {
  MetricFamily f;
  f.name = "scenefarm_escapes";
  // prometheus-cpp 1.0.1 writes help as it is (no escaping): so does the writer.
  f.help = "Backslash \\ quote \" newline \n and UTF-8 \xc3\xa9 in the help.";
  f.type = MetricType::Gauge;
  const std::vector<std::string> values = {
      "",
      "plain",
      "a\\b",
      "a\"b",
      "a\nb",
      "\\\"\n",
      "\\\\",
      "\n\n",
      "end\\",
      "\"start",
      "\xc3\xa9t\xc3\xa9",
      "tab\there",
      "{}=,",
  };
  for (const auto& v : values) {
    ClientMetric m;
    m.label = {{"value", v}, {"other", v + v}};
    m.gauge.value = 1;
    f.metric.push_back(m);
  }
  ClientMetric none;  // no labels at all
  none.gauge.value = 2;
  f.metric.push_back(none);
  ClientMetric empty_name;  // what the writer is given is what it writes
  empty_name.label = {{"", ""}};
  f.metric.push_back(empty_name);
  EXPECT_EQ(Ours({f}), Theirs({f}));
}

TEST(MetricsTextTest, HistogramsAsTextSerializer) {
  MetricFamily f;
  f.name = "scenefarm_duration_seconds";
  f.help = "A histogram.";
  f.type = MetricType::Histogram;
  auto add = [&](prometheus::ClientMetric::Histogram h, std::vector<ClientMetric::Label> labels) {
    ClientMetric m;
    m.label = std::move(labels);
    m.histogram = std::move(h);
    f.metric.push_back(m);
  };
  // With its own +Inf bucket (as families.cpp builds them), without (the writer adds one),
  // with none at all, with special bounds and sums, with and without labels.
  add({10, 12.5, {{1, 0.005}, {4, 0.1}, {9, 1}, {10, 2.5}, {10, kInf}}}, {{"queue", "a\"b"}});
  add({7, 0.25, {{1, 0.1}, {2, 1e-5}, {3, 0.3}}}, {{"queue", "b"}});
  add({0, 0, {}}, {{"queue", "c"}});
  add({3, kNaN, {{1, kNaN}, {2, -kInf}, {3, kInf}}}, {});
  add({5, -1e20, {{1, kInf}, {2, 1}}}, {{"a", "1"}, {"b", "2"}});
  add({uint64_t{18446744073709551615u}, 1e300, {{uint64_t{18446744073709551615u}, 1e300}}},
      {{"big", "yes"}});
  EXPECT_EQ(Ours({f}), Theirs({f}));
}

TEST(MetricsTextTest, SummariesAsTextSerializer) {
  MetricFamily f;
  f.name = "exposer_request_latencies";
  f.help = "Latencies of serving scrape requests, in microseconds";
  f.type = MetricType::Summary;
  ClientMetric m;
  m.summary = {3, 1234.5, {{0.5, 100}, {0.9, 200.25}, {0.99, kNaN}}};
  f.metric.push_back(m);
  ClientMetric labelled;
  labelled.label = {{"path", "/metrics\n"}};
  labelled.summary = {0, 0, {{kInf, 1}, {1e-20, 2}, {1.0 / 3, -0.0}}};
  f.metric.push_back(labelled);
  ClientMetric no_quantiles;
  no_quantiles.summary = {1, 0.1, {}};
  f.metric.push_back(no_quantiles);
  EXPECT_EQ(Ours({f}), Theirs({f}));
}

TEST(MetricsTextTest, TimestampsEmptyFamiliesAndUnknownTypesAsTextSerializer) {
  std::vector<MetricFamily> families;
  for (const auto type : {MetricType::Counter, MetricType::Gauge, MetricType::Summary,
                          MetricType::Untyped, MetricType::Histogram}) {
    MetricFamily empty;  // no samples: HELP and TYPE only
    empty.name = "scenefarm_empty_" + std::to_string(static_cast<int>(type));
    empty.help = "Empty.";
    empty.type = type;
    families.push_back(empty);
    MetricFamily stamped = empty;  // every line of a sample carries its timestamp
    stamped.name = "scenefarm_stamped_" + std::to_string(static_cast<int>(type));
    stamped.help = "";
    for (const int64_t ts :
         {int64_t{1712345678901}, int64_t{-5}, int64_t{0}, std::numeric_limits<int64_t>::max()}) {
      ClientMetric m;
      m.label = {{"ts", std::to_string(ts)}};
      m.counter.value = m.gauge.value = m.untyped.value = 1.5;
      m.summary = {2, 3, {{0.5, 1}}};
      m.histogram = {2, 3, {{1, 1}, {2, 10}}};
      m.timestamp_ms = ts;
      stamped.metric.push_back(m);
    }
    families.push_back(stamped);
  }
  MetricFamily unknown;  // a type TextSerializer does not know: HELP only
  unknown.name = "scenefarm_unknown";
  unknown.help = "No type.";
  unknown.type = static_cast<MetricType>(42);
  unknown.metric.resize(1);
  families.push_back(unknown);
  EXPECT_EQ(Ours(families), Theirs(families));
  EXPECT_EQ(Ours({}), "");
}

TEST(MetricsTextTest, RandomDoublesAsTextSerializer) {
  // Every bit pattern class: any 64 bits, whole numbers of every size, fractions of every scale.
  std::mt19937_64 rng(14);
  MetricFamily f;
  f.name = "scenefarm_random";
  f.type = MetricType::Gauge;
  for (int i = 0; i < 40000; ++i) {
    const uint64_t bits = rng();
    double v = 0;
    switch (i % 4) {
      case 0:
        std::memcpy(&v, &bits, sizeof(v));
        break;
      case 1:
        v = static_cast<double>(static_cast<int64_t>(bits) >> (rng() % 64));
        break;
      case 2:
        v = std::ldexp(static_cast<double>(bits >> 11), static_cast<int>(rng() % 200) - 150);
        break;
      default:
        v = static_cast<double>(bits % 100000000) / static_cast<double>(1 + rng() % 100000);
    }
    ClientMetric m;
    m.gauge.value = v;
    f.metric.push_back(m);
  }
  EXPECT_EQ(Ours({f}), Theirs({f}));
}

TEST(MetricsTextTest, AppendsToWhatIsThere) {
  const std::vector<MetricFamily> families = {Simple("scenefarm_g", MetricType::Gauge, "G.")};
  std::string out = "kept\n";
  AppendMetricsText(families, &out);
  EXPECT_EQ(out, "kept\n" + Theirs(families));
  std::string d;
  AppendMetricsDouble(0.1, &d);
  AppendMetricsDouble(-kInf, &d);
  EXPECT_EQ(d, "0.1-Inf");
}

TEST(MetricsGzipTest, RoundTripsSmallLargeAndIncompressiblePages) {
  std::mt19937_64 rng(5);
  std::string noise(300000, '\0');
  for (auto& c : noise)
    c = static_cast<char>(rng());
  const std::string page = Ours({Simple("scenefarm_g", MetricType::Gauge, "G.")});
  std::string big;
  while (big.size() < 3000000)
    big += page;
  for (const std::string& in : {std::string(), std::string("x"), page, big, noise}) {
    const std::string gz = GzipCompress(in);
    ASSERT_GE(gz.size(), 18u);  // a gzip header and trailer at least
    EXPECT_EQ(static_cast<unsigned char>(gz[0]), 0x1f);
    EXPECT_EQ(static_cast<unsigned char>(gz[1]), 0x8b);
    std::string back;
    EXPECT_TRUE(scenefarm::testing::Gunzip(gz, &back));
    EXPECT_EQ(back, in);
  }
  EXPECT_LT(GzipCompress(big).size(), big.size() / 5);
}

TEST(MetricsGzipTest, AcceptEncodingIsRead) {
  EXPECT_FALSE(AcceptsGzip(nullptr));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("identity"));
  EXPECT_FALSE(AcceptsGzip("deflate, br"));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("br, gzip ; q=0.000"));
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("GZip"));
  EXPECT_TRUE(AcceptsGzip("gzip, deflate"));  // what Prometheus sends
  EXPECT_TRUE(AcceptsGzip("deflate,gzip;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("identity, gzip;q=1.0"));
}

}  // namespace
}  // namespace scenefarm::exporter
