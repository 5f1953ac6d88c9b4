// A small HTTP/1.1 client for ComfyUI, LLM endpoints and the exporter's probes, on plain
// sockets (issue #14 P5: libcurl loaded ~32 libraries into every process, most of a worker's
// memory). https:// loads the system's OpenSSL (libssl.so.3) at its first use, verifies the
// server's certificate against the system's CAs (SSL_CERT_FILE / SSL_CERT_DIR honoured) and its
// name or IP address; a process that never asks for https never loads it.
//
// Every call has a connect timeout and a total timeout; a host name is resolved within the
// connect timeout and the cancel flag (getaddrinfo, which takes no timeout, runs on a thread of
// its own; one that outlives the wait finishes there and frees its own answer, so a hung DNS
// costs a thread for as long as it hangs, never the caller). No Origin header is ever sent
// (ComfyUI answers 403 to an Origin that differs from its loopback Host). One Client reuses its
// connection between calls (HTTP keep-alive; a request whose reused connection turns out closed
// before any byte of an answer is sent again once on a new one, as libcurl does); a Client is
// not thread-safe: use one per thread.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "scenefarm/handles.h"
#include "scenefarm/status.h"

struct addrinfo;

namespace scenefarm::http {

// Splits "http://host:port/path" into its parts. Only http and https are accepted.
struct Url {
  std::string scheme;
  std::string host;
  int port = 0;
  std::string path;  // "/" when absent
};
Result<Url> ParseUrl(std::string_view url);

struct ClientOptions {
  // Time allowed to open the TCP connection.
  std::chrono::milliseconds connect_timeout{2000};
  // Time allowed for the whole request, response body included.
  std::chrono::milliseconds timeout{10000};
  // When set, a request in flight stops (kAborted) within about a second of *cancel turning
  // true: a long request (the LLM generation probe) never holds up a shutdown.
  const std::atomic<bool>* cancel = nullptr;
  // The largest response body read; a larger one stops the transfer and is kInternal ("response
  // body larger than N bytes"), so that a broken or hostile server cannot exhaust memory.
  size_t max_body_bytes = size_t{256} << 20;
  // How a host name that is not a numeric address is resolved: getaddrinfo's signature and
  // contract (its answer freed with freeaddrinfo). Null: getaddrinfo. Tests put one that hangs.
  int (*resolver)(const char* node, const char* service, const struct addrinfo* hints,
                  struct addrinfo** res) = nullptr;
};

struct Response {
  long status = 0;
  std::string body;
  std::string content_type;
};

class Client {
 public:
  // base_url: "http://127.0.0.1:8188" (no trailing slash needed; one is stripped).
  explicit Client(std::string base_url, ClientOptions options = {});
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;
  ~Client();

  // path starts with '/', and may carry a query string built with UrlEncode.
  // Any HTTP status is a Response; only transport failures are errors:
  // kDeadlineExceeded for a timeout, kAborted when options.cancel stopped it, kInternal for a
  // body over options.max_body_bytes, kUnavailable for everything else (refused, reset, DNS,
  // a malformed answer, a certificate that does not verify).
  Result<Response> Get(std::string_view path);
  Result<Response> Post(std::string_view path, std::string_view body,
                        std::string_view content_type = "application/json");
  Result<Response> Request(std::string_view method, std::string_view path, std::string_view body,
                           std::string_view content_type);

  const std::string& base_url() const { return base_url_; }
  void set_options(ClientOptions options) { options_ = options; }

  struct Connection;  // defined in http_client.cpp

 private:
  Result<Response> Exchange(std::string_view method, const Url& url, const std::string& request,
                            std::string_view body, const std::string& what);

  std::string base_url_;
  ClientOptions options_;
  std::unique_ptr<Connection> conn_;  // the kept-alive connection, if any
};

// Percent-encodes a query-string component (RFC 3986 unreserved characters kept).
std::string UrlEncode(std::string_view s);

}  // namespace scenefarm::http
