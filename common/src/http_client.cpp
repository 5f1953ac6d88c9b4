#include "scenefarm/http_client.h"

#include <cctype>
#include <cstdlib>
#include <mutex>

namespace scenefarm::http {
namespace {

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Non-zero stops the transfer (CURLE_ABORTED_BY_CALLBACK).
int StopWhenCancelled(void* cancel, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(cancel)->load() ? 1 : 0;
}

struct BodySink {
  std::string* body;
  size_t limit;
  bool exceeded = false;
};

size_t AppendBody(char* data, size_t size, size_t n, void* user) {
  auto* sink = static_cast<BodySink*>(user);
  if (sink->body->size() + size * n > sink->limit) {
    sink->exceeded = true;
    return 0;  // CURLE_WRITE_ERROR: the transfer stops here
  }
  sink->body->append(data, size * n);
  return size * n;
}

}  // namespace

Client::Client(std::string base_url, ClientOptions options)
    : base_url_(std::move(base_url)), options_(options) {
  GlobalInitOnce();
  while (!base_url_.empty() && base_url_.back() == '/')
    base_url_.pop_back();
}

Client::~Client() = default;

Result<Response> Client::Get(std::string_view path) {
  return Request("GET", path, {}, {});
}

Result<Response> Client::Post(std::string_view path, std::string_view body,
                              std::string_view content_type) {
  return Request("POST", path, body, content_type);
}

Result<Response> Client::Request(std::string_view method, std::string_view path,
                                 std::string_view body, std::string_view content_type) {
  if (!curl_) curl_.reset(curl_easy_init());
  if (!curl_) return Status::Internal("curl_easy_init failed");
  CURL* h = curl_.get();
  // Reset drops per-request options but keeps the connection cache: the next call reuses it.
  curl_easy_reset(h);
  const std::string url = base_url_ + std::string(path);
  Response response;
  CurlSlist headers;
  if (!content_type.empty()) {
    const std::string ct = "Content-Type: " + std::string(content_type);
    headers.reset(curl_slist_append(nullptr, ct.c_str()));
  }
  // libcurl adds "Expect: 100-continue" to large POSTs; ComfyUI's aiohttp handles it but the
  // extra round trip is waste.
  headers.reset(curl_slist_append(headers.release(), "Expect:"));
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(options_.connect_timeout.count()));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(options_.timeout.count()));
  BodySink sink{&response.body, options_.max_body_bytes};
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(options_.max_body_bytes));
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
  if (options_.cancel != nullptr) {
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &StopWhenCancelled);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(options_.cancel));
  }
  if (method == "GET") {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  } else {
    const std::string m(method);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m.c_str());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    if (method == "POST") curl_easy_setopt(h, CURLOPT_POST, 1L);
  }
  const CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    std::string what = std::string(method) + " " + url + ": " + curl_easy_strerror(rc);
    if (sink.exceeded || rc == CURLE_FILESIZE_EXCEEDED) {
      return Status::Internal(std::string(method) + " " + url + ": response body larger than " +
                              std::to_string(options_.max_body_bytes) + " bytes");
    }
    if (rc == CURLE_OPERATION_TIMEDOUT) return Status::DeadlineExceeded(what);
    if (rc == CURLE_ABORTED_BY_CALLBACK) return Status::Aborted(what);
    return Status::Unavailable(what);
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  char* ct = nullptr;
  curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
  if (ct != nullptr) response.content_type = ct;
  return response;
}

std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Result<Url> ParseUrl(std::string_view url) {
  Url u;
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) {
    return Status::InvalidArgument("URL '" + std::string(url) + "' has no scheme");
  }
  u.scheme = std::string(url.substr(0, scheme_end));
  if (u.scheme != "http" && u.scheme != "https") {
    return Status::InvalidArgument("URL '" + std::string(url) + "': scheme must be http or https");
  }
  std::string_view rest = url.substr(scheme_end + 3);
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  u.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  const auto colon = authority.rfind(':');
  if (colon == std::string_view::npos) {
    u.host = std::string(authority);
    u.port = u.scheme == "https" ? 443 : 80;
  } else {
    u.host = std::string(authority.substr(0, colon));
    const std::string port(authority.substr(colon + 1));
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || p <= 0 || p > 65535) {
      return Status::InvalidArgument("URL '" + std::string(url) + "' has a bad port");
    }
    u.port = static_cast<int>(p);
  }
  if (u.host.empty()) return Status::InvalidArgument("URL '" + std::string(url) + "' has no host");
  return u;
}

}  // namespace scenefarm::http
