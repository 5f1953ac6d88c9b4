#include "scenefarm/http_client.h"

#include <gtest/gtest.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "server.h"
#include "support/net.h"
#include "support/process.h"

namespace scenefarm::http {
namespace {

TEST(ParseUrl, SplitsHostPortAndPath) {
  auto u = ParseUrl("http://127.0.0.1:8188/api");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8188);
  EXPECT_EQ(u->path, "/api");
  auto d = ParseUrl("https://comfy.local");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 443);
  EXPECT_EQ(d->path, "/");
}

TEST(ParseUrl, RefusesWhatIsNotAnHttpUrl) {
  for (const char* bad : {"127.0.0.1:8188", "ftp://x:1", "http://:80", "http://h:0", "http://h:x",
                          "http://h:70000"}) {
    auto u = ParseUrl(bad);
    ASSERT_FALSE(u.ok()) << bad;
    EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(UrlEncode, KeepsUnreservedAndEscapesTheRest) {
  EXPECT_EQ(UrlEncode("scene_01-a.png~"), "scene_01-a.png~");
  EXPECT_EQ(UrlEncode("../a b/&"), "..%2Fa%20b%2F%26");
}

using namespace std::chrono_literals;

// A loopback server that answers each request it reads with the next canned reply, one
// connection at a time, and counts connections. A reply "HANG" sends nothing (the connection
// stays open until the server stops); "CLOSE" closes the connection unanswered; after an
// HTTP/1.0 reply the connection is closed (its body runs to the end of the connection).
class CannedServer {
 public:
  explicit CannedServer(std::vector<std::string> replies, bool close_each = false)
      : replies_(std::move(replies)), close_each_(close_each) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(listen_, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(listen_, 8) != 0 ||
        ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "cannot listen on loopback";
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~CannedServer() {
    stop_ = true;
    thread_.join();
    ::close(listen_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  int connections() const {
    std::lock_guard<std::mutex> l(mu_);
    return connections_;
  }
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }

 private:
  bool Readable(int fd) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0) return true;
    }
    return false;
  }

  void Serve() {
    while (Readable(listen_)) {
      const int fd = ::accept(listen_, nullptr, nullptr);
      if (fd < 0) continue;
      {
        std::lock_guard<std::mutex> l(mu_);
        ++connections_;
      }
      Converse(fd);
      ::close(fd);
    }
  }

  // Reads requests (headers and a Content-Length body) and answers them until the client
  // closes, a reply says otherwise, or the server stops.
  void Converse(int fd) {
    std::string in;
    for (;;) {
      size_t end;
      while ((end = in.find("\r\n\r\n")) == std::string::npos) {
        char buf[4096];
        if (!Readable(fd)) return;
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) return;
        in.append(buf, static_cast<size_t>(n));
      }
      size_t length = 0;
      if (const auto cl = in.find("Content-Length: "); cl != std::string::npos && cl < end) {
        length = std::strtoul(in.c_str() + cl + 16, nullptr, 10);
      }
      while (in.size() < end + 4 + length) {
        char buf[4096];
        if (!Readable(fd)) return;
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) return;
        in.append(buf, static_cast<size_t>(n));
      }
      std::string reply;
      {
        std::lock_guard<std::mutex> l(mu_);
        requests_.push_back(in.substr(0, end + 4 + length));
        reply = next_ < replies_.size() ? replies_[next_++] : "CLOSE";
      }
      in.erase(0, end + 4 + length);
      if (reply == "CLOSE") return;
      if (reply == "HANG") {
        while (Readable(fd)) {
          char buf[4096];
          if (::recv(fd, buf, sizeof(buf), 0) <= 0) return;
        }
        return;
      }
      if (::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(reply.size()))
        return;
      if (close_each_ || reply.rfind("HTTP/1.0", 0) == 0) return;
    }
  }

  std::vector<std::string> replies_;
  bool close_each_;
  int listen_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  int connections_ = 0;
  size_t next_ = 0;
  std::vector<std::string> requests_;
  std::thread thread_;
};

std::string Ok(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(Client, KeepsOneConnectionAliveAcrossRequests) {
  CannedServer server({Ok("1"), Ok("{\"two\":2}"), Ok("")});
  Client c(server.url() + "/");
  auto a = c.Get("/queue");
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_EQ(a->status, 200);
  EXPECT_EQ(a->body, "1");
  EXPECT_EQ(a->content_type, "application/json");
  auto b = c.Post("/prompt", "{\"prompt\":{}}");
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->body, "{\"two\":2}");
  auto e = c.Get("/history?max_items=1");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->body, "");
  EXPECT_EQ(server.connections(), 1);
  const auto r = server.requests();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[0].rfind("GET /queue HTTP/1.1\r\n", 0), 0u) << r[0];
  EXPECT_NE(r[0].find("\r\nHost: 127.0.0.1:" + std::to_string(server.port()) + "\r\n"),
            std::string::npos);
  EXPECT_EQ(r[0].find("Origin"), std::string::npos);
  EXPECT_EQ(r[1].rfind("POST /prompt HTTP/1.1\r\n", 0), 0u) << r[1];
  EXPECT_NE(r[1].find("\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n"
                      "{\"prompt\":{}}"),
            std::string::npos)
      << r[1];
  EXPECT_EQ(r[2].rfind("GET /history?max_items=1 HTTP/1.1\r\n", 0), 0u) << r[2];
}

TEST(Client, ReadsChunkedBodiesBodiesToTheEndAndSkipsInterimAnswers) {
  CannedServer server({"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"
                       "6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
                       "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2"
                       "\r\n\r\nok",
                       "HTTP/1.1 204 No Content\r\n\r\n",
                       "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno such file"},
                      false);
  Client c(server.url());
  auto chunked = c.Get("/a");
  ASSERT_TRUE(chunked.ok()) << chunked.status().ToString();
  EXPECT_EQ(chunked->body, "hello world");
  auto created = c.Post("/b", "x", "text/plain");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(created->status, 201);
  EXPECT_EQ(created->body, "ok");
  auto empty = c.Post("/c", "");
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_EQ(empty->status, 204);
  // HTTP/1.0 without a length: the body runs to the end of the connection.
  auto to_end = c.Get("/d");
  ASSERT_TRUE(to_end.ok()) << to_end.status().ToString();
  EXPECT_EQ(to_end->status, 404);
  EXPECT_EQ(to_end->body, "no such file");
  EXPECT_EQ(to_end->content_type, "text/plain");
  EXPECT_EQ(server.connections(), 1);
}

TEST(Client, AConnectionTheServerClosedIsReplaced) {
  // The server announces keep-alive but closes after every answer.
  CannedServer server({Ok("a"), Ok("b"), Ok("c")}, true);
  Client c(server.url());
  for (const char* want : {"a", "b", "c"}) {
    auto r = c.Get("/x");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->body, want);
  }
  EXPECT_EQ(server.connections(), 3);
}

TEST(Client, MalformedAnswersAreUnavailableAndNamed) {
  CannedServer server({"CLOSE", "SSH-2.0-OpenSSH\r\n\r\n",
                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                       "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"},
                      true);
  Client c(server.url());
  const std::vector<std::string> want = {"empty reply from server", "not an HTTP/1.x response",
                                         "bad chunk size 'zz'", "connection closed with 5 bytes"};
  for (const auto& w : want) {
    auto r = c.Get("/m");
    ASSERT_FALSE(r.ok()) << w;
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().ToString();
    EXPECT_NE(r.status().message().find(w), std::string::npos) << r.status().ToString();
    EXPECT_NE(r.status().message().find("GET " + server.url() + "/m: "), std::string::npos);
  }
}

TEST(Client, ASilentServerTimesOutAndACancelStopsTheRequest) {
  CannedServer server({"HANG", "HANG"}, true);
  Client c(server.url(), {2000ms, 300ms, nullptr, 1024});
  auto slow = c.Get("/queue");
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.status().code(), StatusCode::kDeadlineExceeded) << slow.status().ToString();
  EXPECT_NE(slow.status().message().find("timed out after 300 ms"), std::string::npos);
  std::atomic<bool> cancel{true};
  c.set_options({2000ms, 60000ms, &cancel, 1024});
  auto stopped = c.Get("/queue");
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), StatusCode::kAborted) << stopped.status().ToString();
}

// Resolvers for the tests below (ClientOptions::resolver): one that hangs until released (as
// getaddrinfo does on a DNS server that does not answer), then answers 127.0.0.1; one that
// answers 127.0.0.1 at once. Both count their calls.
struct Dns {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  int running = 0, calls = 0;
};
Dns g_dns;

int HangingResolver(const char*, const char* service, const addrinfo* hints, addrinfo** res) {
  std::unique_lock<std::mutex> lock(g_dns.mu);
  ++g_dns.calls;
  ++g_dns.running;
  g_dns.cv.notify_all();
  g_dns.cv.wait(lock, [] { return g_dns.release; });
  --g_dns.running;
  g_dns.cv.notify_all();
  lock.unlock();
  return getaddrinfo("127.0.0.1", service, hints, res);  // freed by the thread that asked
}

int LoopbackResolver(const char*, const char* service, const addrinfo* hints, addrinfo** res) {
  {
    std::lock_guard<std::mutex> lock(g_dns.mu);
    ++g_dns.calls;
  }
  return getaddrinfo("127.0.0.1", service, hints, res);
}

TEST(Client, AHungNameResolutionEndsAtTheConnectTimeoutOrTheCancelFlag) {
  CannedServer server({Ok("1")});
  const std::string port = std::to_string(server.port());
  ClientOptions o{300ms, 60000ms, nullptr, 1024};
  o.resolver = &HangingResolver;
  Client c("http://dns-hangs.invalid:" + port + "/", o);
  auto slow = c.Get("/queue");
  ASSERT_FALSE(slow.ok());
  EXPECT_EQ(slow.status().code(), StatusCode::kDeadlineExceeded) << slow.status().ToString();
  EXPECT_NE(slow.status().message().find("cannot resolve host dns-hangs.invalid"),
            std::string::npos)
      << slow.status().ToString();
  // No connect timeout to speak of: the cancel flag ends the wait.
  std::atomic<bool> cancel{false};
  o.connect_timeout = 600000ms;
  o.cancel = &cancel;
  c.set_options(o);
  std::thread canceller([&] {
    std::unique_lock<std::mutex> lock(g_dns.mu);
    g_dns.cv.wait(lock, [] { return g_dns.running == 2; });  // the second call is resolving
    cancel = true;
  });
  auto stopped = c.Get("/queue");
  canceller.join();
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(stopped.status().code(), StatusCode::kAborted) << stopped.status().ToString();
  // The abandoned resolutions finish on their own threads once the DNS answers.
  {
    std::unique_lock<std::mutex> lock(g_dns.mu);
    g_dns.release = true;
    g_dns.cv.notify_all();
    g_dns.cv.wait(lock, [] { return g_dns.running == 0; });
  }
  // A name the resolver answers connects; a numeric address never asks it.
  g_dns.calls = 0;
  o.resolver = &LoopbackResolver;
  o.cancel = nullptr;
  Client named("http://farm-comfy:" + port + "/", o);
  auto ok = named.Get("/queue");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->body, "1");
  EXPECT_EQ(g_dns.calls, 1);
  Client numeric("http://127.0.0.1:" + std::to_string(scenefarm::testing::FreePort()) + "/", o);
  EXPECT_EQ(numeric.Get("/queue").status().code(), StatusCode::kUnavailable);  // refused
  EXPECT_EQ(g_dns.calls, 1);
}

TEST(Client, AChunkedBodyOverTheLimitIsRefused) {
  std::string chunks;
  for (int i = 0; i < 10; ++i)
    chunks += "3e8\r\n" + std::string(1000, 'x') + "\r\n";
  CannedServer server(
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + "0\r\n\r\n",
       Ok("after")});
  Client c(server.url(), {2000ms, 10000ms, nullptr, 5000});
  auto r = c.Get("/big");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("response body larger than 5000 bytes"), std::string::npos);
  auto next = c.Get("/small");  // a new connection: the old one was mid-body
  ASSERT_TRUE(next.ok()) << next.status().ToString();
  EXPECT_EQ(next->body, "after");
}

// https: OpenSSL's own test server (`openssl s_server -www`) with a self-signed certificate for
// 127.0.0.1. Trusted through SSL_CERT_FILE the request succeeds; untrusted it is refused.
TEST(Client, HttpsVerifiesTheServerCertificate) {
  scenefarm::testing::TempDir dir;
  const auto d = dir.path();
  ASSERT_EQ(std::system(("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                         "-addext subjectAltName=IP:127.0.0.1 -keyout " +
                         (d / "key.pem").string() + " -out " + (d / "cert.pem").string() +
                         " >/dev/null 2>&1")
                            .c_str()),
            0);
  const int port = scenefarm::testing::FreePort();
  scenefarm::testing::Process tls_server(
      {"/usr/bin/openssl", "s_server", "-quiet", "-www", "-accept",
       "127.0.0.1:" + std::to_string(port), "-cert", (d / "cert.pem").string(), "-key",
       (d / "key.pem").string()},
      d / "s_server.log");
  ASSERT_TRUE(
      scenefarm::testing::WaitFor([&] { return scenefarm::testing::PortOpen(port); }, 30000ms))
      << tls_server.Log();
  const std::string base = "https://127.0.0.1:" + std::to_string(port);
  const char* old = std::getenv("SSL_CERT_FILE");
  const std::string saved = old ? old : "";
  ::setenv("SSL_CERT_FILE", (d / "cert.pem").string().c_str(), 1);
  Client trusted(base);
  auto ok = trusted.Get("/");
  ::unsetenv("SSL_CERT_FILE");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->status, 200);
  EXPECT_NE(ok->body.find("s_server"), std::string::npos) << ok->body.substr(0, 200);
  ::setenv("SSL_CERT_FILE", (d / "none.pem").string().c_str(), 1);
  Client untrusted(base);
  auto refused = untrusted.Get("/");
  if (old) {
    ::setenv("SSL_CERT_FILE", saved.c_str(), 1);
  } else {
    ::unsetenv("SSL_CERT_FILE");
  }
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("certificate"), std::string::npos)
      << refused.status().ToString();
}

TEST(Client, RefusedConnectionIsUnavailable) {
  const int port = scenefarm::testing::FreePort();  // nothing listens there
  Client c("http://127.0.0.1:" + std::to_string(port) + "/");
  auto r = c.Get("/system_stats");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("/system_stats"), std::string::npos);
}

TEST(Client, ABodyOverTheLimitIsAClearErrorAndIsNotRead) {
  scenefarm::testing::TempDir dir;
  scenefarm::testing::comfy::ServerOptions so;
  so.base_dir = dir.path();
  scenefarm::testing::comfy::Server server(so);
  ASSERT_TRUE(server.Start().ok());
  // The test server answers GET /big with a 100 kB JSON string.
  const nlohmann::json fault = {{"http",
                                 {{{"method", "GET"},
                                   {"path", "/big"},
                                   {"status", 200},
                                   {"body", std::string(100000, 'x')},
                                   {"count", 0}}}}};
  Client control(server.url());
  auto set = control.Post("/_test/faults", fault.dump());
  ASSERT_TRUE(set.ok() && set->status == 200);

  Client small(server.url(), {2000ms, 10000ms, nullptr, 50000});
  auto r = small.Get("/big");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("response body larger than 50000 bytes"), std::string::npos)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find("/big"), std::string::npos);
  // The same client goes on working, and a limit above the body reads it whole.
  small.set_options({2000ms, 10000ms, nullptr, 200000});
  auto whole = small.Get("/big");
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ(whole->body.size(), 100002u);  // the JSON string's quotes
}

}  // namespace
}  // namespace scenefarm::http
