#include "metrics_endpoint.h"

#include <civetweb.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <limits>
#include <vector>

#include "metrics_text.h"

namespace scenefarm::exporter {
namespace {

// Each family as prometheus-cpp 1.0.1's MetricsHandler registers it (pull/src/handler.cc), so
// that dashboards and docs/metrics.md's exposer_* line stay true.
prometheus::Family<prometheus::Counter>& TransferredBytes(prometheus::Registry& r) {
  return prometheus::BuildCounter()
      .Name("exposer_transferred_bytes_total")
      .Help("Transferred bytes to metrics services")
      .Register(r);
}
prometheus::Family<prometheus::Counter>& Scrapes(prometheus::Registry& r) {
  return prometheus::BuildCounter()
      .Name("exposer_scrapes_total")
      .Help("Number of times metrics were scraped")
      .Register(r);
}
prometheus::Family<prometheus::Summary>& Latencies(prometheus::Registry& r) {
  return prometheus::BuildSummary()
      .Name("exposer_request_latencies")
      .Help("Latencies of serving scrape requests, in microseconds")
      .Register(r);
}

// The text format's media type (Prometheus's exposition format 0.0.4).
constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

bool AcceptsGzip(const char* accept_encoding) {
  if (accept_encoding == nullptr) return false;
  std::string_view rest(accept_encoding);
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    const size_t semi = item.find(';');
    if (!IEquals(Trim(item.substr(0, semi)), "gzip")) continue;
    if (semi == std::string_view::npos) return true;
    // gzip;q=0 (0, 0.0, 0.000) refuses it; any other weight accepts it.
    std::string_view param = Trim(item.substr(semi + 1));
    if (param.size() < 2 || (param[0] != 'q' && param[0] != 'Q') || param[1] != '=') return true;
    param = Trim(param.substr(2));
    return param.find_first_not_of("0.") != std::string_view::npos || param.empty();
  }
  return false;
}

std::string GzipCompress(std::string_view in) {
  // zlib counts in 32 bits: a page past that goes uncompressed rather than cut short.
  if (in.size() > std::numeric_limits<uInt>::max() / 2) return {};
  z_stream zs{};
  // 16 + MAX_WBITS: a gzip header and trailer, not zlib's; memLevel 9 as prometheus-cpp.
  // Level 1, not prometheus-cpp's default 6: Prometheus asks for gzip at every scrape, and the
  // 948 KB page of 10,000 workers took zlib ~5 ms at level 6 and ~2 ms at level 1, for 47 KB
  // against 55 KB on the wire (issue #14 P8).
  if (deflateInit2(&zs, Z_BEST_SPEED, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY) != Z_OK)
    return {};
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  // The page compresses about tenfold: start at an eighth and grow, rather than reserving
  // deflateBound (more than the page itself) at every scrape.
  std::string out(in.size() / 8 + 1024, '\0');
  int ret = Z_OK;
  while (ret == Z_OK) {
    if (zs.total_out == out.size()) out.resize(out.size() * 2);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + zs.total_out);
    zs.avail_out = static_cast<uInt>(
        std::min<size_t>(out.size() - zs.total_out, std::numeric_limits<uInt>::max()));
    ret = deflate(&zs, Z_FINISH);
  }
  deflateEnd(&zs);
  if (ret != Z_STREAM_END) return {};
  out.resize(zs.total_out);
  return out;
}

MetricsEndpoint::MetricsEndpoint(std::shared_ptr<prometheus::Collectable> collectable)
    : collectable_(std::move(collectable)),
      registry_(std::make_shared<prometheus::Registry>()),
      bytes_transferred_(TransferredBytes(*registry_).Add({})),
      scrapes_(Scrapes(*registry_).Add({})),
      latencies_(
          Latencies(*registry_)
              .Add({}, prometheus::Summary::Quantiles{{0.5, 0.05}, {0.9, 0.01}, {0.99, 0.001}})) {}

std::string MetricsEndpoint::Page() {
  const std::vector<prometheus::MetricFamily> own = registry_->Collect();
  std::vector<prometheus::MetricFamily> families = collectable_->Collect();
  std::string text;
  // The page of 10,000 workers is about 1 MB: one allocation, some room for growth.
  const size_t last = last_size_.load(std::memory_order_relaxed);
  text.reserve(last + last / 32 + 4096);
  AppendMetricsText(own, &text);
  AppendMetricsText(families, &text);
  last_size_.store(text.size(), std::memory_order_relaxed);
  return text;
}

int MetricsEndpoint::Serve(mg_connection* conn) {
  const auto start = std::chrono::steady_clock::now();
  const mg_request_info* ri = mg_get_request_info(conn);
  const char* method = ri->request_method ? ri->request_method : "";
  const bool head = std::strcmp(method, "HEAD") == 0;
  if (!head && std::strcmp(method, "GET") != 0) {
    static const char kBody[] = "only GET or HEAD\n";
    mg_printf(conn,
              "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Type: text/plain\r\n"
              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
              sizeof(kBody) - 1);
    mg_write(conn, kBody, sizeof(kBody) - 1);
    return 405;
  }
  if (head) {
    // What a GET would answer, without collecting the page (a HEAD is a liveness check, not a
    // scrape): no Content-Length, no body.
    mg_printf(conn, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nConnection: close\r\n\r\n",
              kContentType);
    return 200;
  }
  std::string body = Page();
  bool gzipped = false;
  if (AcceptsGzip(mg_get_header(conn, "Accept-Encoding"))) {
    std::string gz = GzipCompress(body);
    if (!gz.empty()) {
      body = std::move(gz);  // the page's memory goes back before the write
      gzipped = true;
    }
  }
  // Counted before the page goes out, not after as prometheus-cpp does: a scraper that has read
  // this page whole and asks again at once then finds it counted (after, the next scrape could
  // be collected on another thread before these lines ran). So the latency is the time to
  // collect and compress, in microseconds, without the write; the bytes are the page's.
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
      std::chrono::steady_clock::now() - start);
  latencies_.Observe(static_cast<double>(us.count()));
  bytes_transferred_.Increment(static_cast<double>(body.size()));
  scrapes_.Increment();
  mg_printf(conn,
            "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n%sContent-Length: %zu\r\nConnection: "
            "close\r\n\r\n",
            kContentType, gzipped ? "Content-Encoding: gzip\r\n" : "", body.size());
  mg_write(conn, body.data(), body.size());
  return 200;
}

}  // namespace scenefarm::exporter
