// GET /metrics, served by the exporter itself (Server::BeginRequest) instead of prometheus-cpp's
// Exposer handler: the page is written by metrics_text.h into one string sized from the previous
// scrape, gzipped when the scraper accepts gzip, and sent with its Content-Length (issue #14 P8,
// P5). The page is the Exposer's, byte for byte (its TextSerializer's text, and its own families
// exposer_transferred_bytes_total, exposer_scrapes_total and exposer_request_latencies with
// prometheus-cpp's names, help texts and quantiles, first on the page, counted by this handler).
// What differs from prometheus-cpp 1.0.1's handler: Content-Type names the format's version
// (`text/plain; version=0.0.4; charset=utf-8`), gzip is zlib's level 1 (not 6) and
// `gzip;q=0` is refused, HEAD is answered without collecting, other methods get 405,
// `/metrics/...` is 404 (civetweb's prefix match served the page there), the response says
// `Connection: close` (civetweb's keep-alive is off: a kept connection would hold one of its
// threads between scrapes), and a scrape is counted before its page is written, so that
// exposer_request_latencies leaves the write out (a scraper reading the page whole and asking
// again at once always finds the first counted).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/registry.h>
#include <prometheus/summary.h>

struct mg_connection;

namespace scenefarm::exporter {

class MetricsEndpoint {
 public:
  explicit MetricsEndpoint(std::shared_ptr<prometheus::Collectable> collectable);
  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

  // Answers the request on `conn` (path /metrics; auth already checked); returns its status.
  // Thread-safe: civetweb's threads may scrape at once.
  int Serve(mg_connection* conn);

  // The page as Serve writes it (the exposer_* families, then the collectable's): tests.
  std::string Page();

 private:
  std::shared_ptr<prometheus::Collectable> collectable_;
  std::shared_ptr<prometheus::Registry> registry_;  // the exposer_* families
  prometheus::Counter& bytes_transferred_;
  prometheus::Counter& scrapes_;
  prometheus::Summary& latencies_;
  std::atomic<size_t> last_size_{0};  // the previous page's length: the next one's reservation
};

// Whether an Accept-Encoding header value accepts gzip (a "gzip" coding whose q is not 0).
bool AcceptsGzip(const char* accept_encoding);

// `in` gzipped (RFC 1952) as prometheus-cpp's handler does it (memLevel 9), but at zlib's
// fastest level: every Prometheus scrape asks for gzip. Empty when zlib fails (the page then
// goes uncompressed, as with prometheus-cpp).
std::string GzipCompress(std::string_view in);

}  // namespace scenefarm::exporter
