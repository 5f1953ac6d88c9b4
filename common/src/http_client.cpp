#include "scenefarm/http_client.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

namespace scenefarm::http {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// The part of OpenSSL 3's API an https request needs, bound from libssl.so.3 at the first
// https request (the process otherwise never maps it).
struct Tls {
  DlHandle lib;
  const void* (*client_method)() = nullptr;
  void* (*ctx_new)(const void*) = nullptr;
  void (*ctx_free)(void*) = nullptr;
  int (*ctx_default_verify_paths)(void*) = nullptr;
  void (*ctx_set_verify)(void*, int, void*) = nullptr;
  uint64_t (*ctx_set_options)(void*, uint64_t) = nullptr;
  void* (*ssl_new)(void*) = nullptr;
  void (*ssl_free)(void*) = nullptr;
  int (*set_fd)(void*, int) = nullptr;
  long (*ctrl)(void*, int, long, void*) = nullptr;
  int (*set1_host)(void*, const char*) = nullptr;
  void* (*get0_param)(void*) = nullptr;
  int (*param_set1_ip_asc)(void*, const char*) = nullptr;
  int (*connect)(void*) = nullptr;
  int (*read)(void*, void*, int) = nullptr;
  int (*write)(void*, const void*, int) = nullptr;
  int (*get_error)(const void*, int) = nullptr;
  long (*verify_result)(const void*) = nullptr;
  const char* (*verify_string)(long) = nullptr;
  unsigned long (*err_get)() = nullptr;
  void (*err_clear)() = nullptr;
  void (*err_string)(unsigned long, char*, size_t) = nullptr;

  // OpenSSL's queued errors, oldest first, and the certificate check's verdict when it failed.
  std::string Errors(void* ssl) const {
    std::string out;
    for (unsigned long e = err_get(); e != 0; e = err_get()) {
      char buf[256];
      err_string(e, buf, sizeof(buf));
      out += out.empty() ? "" : "; ";
      out += buf;
    }
    if (ssl != nullptr) {
      if (const long v = verify_result(ssl); v != 0) {
        out += (out.empty() ? "" : "; ") + std::string("certificate: ") + verify_string(v);
      }
    }
    return out.empty() ? "TLS error" : out;
  }
};

constexpr int kSslErrorWantRead = 2, kSslErrorWantWrite = 3, kSslErrorZeroReturn = 6;
constexpr int kSslVerifyPeer = 1;
constexpr uint64_t kSslOpIgnoreUnexpectedEof = uint64_t{1} << 7;
constexpr int kSslCtrlSetTlsextHostname = 55;

Result<const Tls*> LoadTls() {
  static std::once_flag once;
  // Never freed: a Client on a thread that outlives static destruction may still use it.
  static Tls* tls = nullptr;
  static std::string error;
  std::call_once(once, [] {
    auto t = std::make_unique<Tls>();
    t->lib.reset(dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL));
    if (!t->lib) {
      const char* e = dlerror();
      error = std::string("https needs OpenSSL 3 (libssl.so.3, Debian package libssl3): ") +
              (e ? e : "not loadable");
      return;
    }
    void* l = t->lib.get();
    BindSymbol(l, "TLS_client_method", &t->client_method);
    BindSymbol(l, "SSL_CTX_new", &t->ctx_new);
    BindSymbol(l, "SSL_CTX_free", &t->ctx_free);
    BindSymbol(l, "SSL_CTX_set_default_verify_paths", &t->ctx_default_verify_paths);
    BindSymbol(l, "SSL_CTX_set_verify", &t->ctx_set_verify);
    BindSymbol(l, "SSL_CTX_set_options", &t->ctx_set_options);
    BindSymbol(l, "SSL_new", &t->ssl_new);
    BindSymbol(l, "SSL_free", &t->ssl_free);
    BindSymbol(l, "SSL_set_fd", &t->set_fd);
    BindSymbol(l, "SSL_ctrl", &t->ctrl);
    BindSymbol(l, "SSL_set1_host", &t->set1_host);
    BindSymbol(l, "SSL_get0_param", &t->get0_param);
    BindSymbol(l, "X509_VERIFY_PARAM_set1_ip_asc", &t->param_set1_ip_asc);
    BindSymbol(l, "SSL_connect", &t->connect);
    BindSymbol(l, "SSL_read", &t->read);
    BindSymbol(l, "SSL_write", &t->write);
    BindSymbol(l, "SSL_get_error", &t->get_error);
    BindSymbol(l, "SSL_get_verify_result", &t->verify_result);
    BindSymbol(l, "X509_verify_cert_error_string", &t->verify_string);
    BindSymbol(l, "ERR_get_error", &t->err_get);
    BindSymbol(l, "ERR_clear_error", &t->err_clear);
    BindSymbol(l, "ERR_error_string_n", &t->err_string);
    if (!t->client_method || !t->ctx_new || !t->ctx_free || !t->ctx_default_verify_paths ||
        !t->ctx_set_verify || !t->ctx_set_options || !t->ssl_new || !t->ssl_free || !t->set_fd ||
        !t->ctrl || !t->set1_host || !t->get0_param || !t->param_set1_ip_asc || !t->connect ||
        !t->read || !t->write || !t->get_error || !t->verify_result || !t->verify_string ||
        !t->err_get || !t->err_clear || !t->err_string) {
      error = "https: libssl.so.3 lacks an OpenSSL 3 entry point";
      return;
    }
    tls = t.release();
  });
  if (tls == nullptr) return Status::Unavailable(error);
  return static_cast<const Tls*>(tls);
}

// OpenSSL writes with write(2), not send(MSG_NOSIGNAL): a server that closed first would raise
// SIGPIPE and end a program that did not ignore it. While one lives, SIGPIPE is blocked in this
// thread; one raised meanwhile is taken off the thread's pending set before the mask goes back,
// and the write fails with EPIPE instead (the way libpq does it).
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    was_pending_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~SigpipeBlock() {
    if (!blocked_) return;
    sigset_t pending;
    sigemptyset(&pending);
    if (!was_pending_ && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false, blocked_ = false;
};

}  // namespace

// One open connection to the server of the last request (TCP, and TLS over it for https), and
// the deadline and cancel flag of the request in flight on it.
struct Client::Connection {
  std::string scheme, host;
  int port = 0;
  UniqueFd fd;
  const Tls* tls = nullptr;
  void* ctx = nullptr;  // SSL_CTX*
  void* ssl = nullptr;  // SSL*
  Clock::time_point deadline;
  milliseconds timeout{0};
  const std::atomic<bool>* cancel = nullptr;
  int (*resolver)(const char*, const char*, const addrinfo*, addrinfo**) = nullptr;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (ssl != nullptr) tls->ssl_free(ssl);
    if (ctx != nullptr) tls->ctx_free(ctx);
  }

  // Waits until the socket is ready for `events` (POLLIN, POLLOUT), by `until` at the latest.
  // Looks at the cancel flag at least every 200 ms.
  Status Wait(short events, Clock::time_point until, const char* timed_out) const {
    for (;;) {
      if (cancel != nullptr && cancel->load()) return Status::Aborted("cancelled");
      const auto left = std::chrono::ceil<milliseconds>(until - Clock::now());
      if (left.count() <= 0) return Status::DeadlineExceeded(timed_out);
      pollfd p{fd.get(), events, 0};
      const int rc = ::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 200)));
      if (rc > 0) return Status::Ok();
      if (rc < 0 && errno != EINTR)
        return Status::Unavailable(std::string("poll: ") + strerror(errno));
    }
  }
  Status WaitIo(short events) const {
    return Wait(events, deadline,
                ("timed out after " + std::to_string(timeout.count()) + " ms").c_str());
  }

  // name:service's addresses into *found (freed with freeaddrinfo), by `until` at the latest
  // and while the cancel flag is down. A numeric address is read at once; a name is resolved
  // by `resolver` on a thread of its own, since getaddrinfo takes no timeout (libcurl's threaded
  // resolver did the same): a resolution that outlives the wait is abandoned to its thread,
  // which frees its answer when it comes.
  Status Resolve(const std::string& name, const std::string& service, Clock::time_point until,
                 addrinfo** found) const {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
    if (getaddrinfo(name.c_str(), service.c_str(), &hints, found) == 0) return Status::Ok();
    hints.ai_flags = AI_NUMERICSERV;
    struct Pending {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false, abandoned = false;
      int rc = 0;
      addrinfo* found = nullptr;
    };
    auto p = std::make_shared<Pending>();
    auto* resolve = resolver != nullptr ? resolver : &::getaddrinfo;
    try {
      std::thread([p, resolve, name, service, hints] {
        addrinfo* f = nullptr;
        const int rc = resolve(name.c_str(), service.c_str(), &hints, &f);
        std::lock_guard<std::mutex> lock(p->mu);
        if (p->abandoned) {
          if (rc == 0 && f != nullptr) freeaddrinfo(f);
          return;
        }
        p->rc = rc;
        p->found = rc == 0 ? f : nullptr;
        p->done = true;
        p->cv.notify_all();
      }).detach();
    } catch (const std::system_error& e) {
      return Status::Unavailable("cannot resolve host " + name + ": no thread (" + e.what() + ")");
    }
    std::unique_lock<std::mutex> lock(p->mu);
    while (!p->done) {
      if (cancel != nullptr && cancel->load()) {
        p->abandoned = true;
        return Status::Aborted("cancelled while resolving " + name);
      }
      const auto now = Clock::now();
      if (now >= until) {
        p->abandoned = true;
        return Status::DeadlineExceeded("cannot resolve host " + name +
                                        " within the connect timeout");
      }
      p->cv.wait_until(lock, std::min(until, now + milliseconds(200)));
    }
    if (p->rc != 0)
      return Status::Unavailable("cannot resolve host " + name + ": " + gai_strerror(p->rc));
    *found = p->found;
    return Status::Ok();
  }

  Status Open(const Url& u, milliseconds connect_timeout) {
    scheme = u.scheme;
    host = u.host;
    port = u.port;
    std::string name = u.host;
    if (name.size() > 2 && name.front() == '[' && name.back() == ']')
      name = name.substr(1, name.size() - 2);
    const std::string service = std::to_string(u.port);
    const auto connect_by = std::min(deadline, Clock::now() + connect_timeout);
    addrinfo* found = nullptr;
    if (Status r = Resolve(name, service, connect_by, &found); !r.ok()) return r;
    std::unique_ptr<addrinfo, void (*)(addrinfo*)> list(found, freeaddrinfo);
    const std::string timed_out =
        "connection timed out after " + std::to_string(connect_timeout.count()) + " ms";
    Status last = Status::Unavailable("no address for " + name);
    int left = 0;
    for (addrinfo* a = found; a != nullptr; a = a->ai_next)
      ++left;
    for (addrinfo* a = found; a != nullptr; a = a->ai_next, --left) {
      // Each address gets its share of what is left of the connect time, so that one whose
      // route drops packets (an unreachable IPv6 address) leaves time for the next.
      const auto attempt_by = Clock::now() + (connect_by - Clock::now()) / std::max(left, 1);
      fd.reset(
          ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
      if (!fd.valid()) {
        last = Status::Unavailable(std::string("socket: ") + strerror(errno));
        continue;
      }
      int rc = ::connect(fd.get(), a->ai_addr, a->ai_addrlen);
      if (rc != 0 && errno == EINPROGRESS) {
        Status w = Wait(POLLOUT, attempt_by, timed_out.c_str());
        if (!w.ok()) {
          fd.reset();
          if (w.code() != StatusCode::kDeadlineExceeded) return w;
          last = w;
          continue;
        }
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
        rc = err == 0 ? 0 : -1;
        errno = err;
      }
      if (rc == 0) {
        const int one = 1;
        setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return scheme == "https" ? Handshake(name, connect_by) : Status::Ok();
      }
      last =
          Status::Unavailable("connect to " + name + " port " + service + ": " + strerror(errno));
      fd.reset();
    }
    return last;
  }

  Status Handshake(const std::string& name, Clock::time_point by) {
    auto loaded = LoadTls();
    if (!loaded.ok()) return loaded.status();
    tls = *loaded;
    ctx = tls->ctx_new(tls->client_method());
    if (ctx == nullptr) return Status::Unavailable("TLS: " + tls->Errors(nullptr));
    tls->ctx_set_verify(ctx, kSslVerifyPeer, nullptr);
    tls->ctx_set_options(ctx, kSslOpIgnoreUnexpectedEof);
    if (tls->ctx_default_verify_paths(ctx) != 1)
      return Status::Unavailable("TLS: " + tls->Errors(nullptr));
    ssl = tls->ssl_new(ctx);
    if (ssl == nullptr || tls->set_fd(ssl, fd.get()) != 1)
      return Status::Unavailable("TLS: " + tls->Errors(nullptr));
    in6_addr ip6;
    in_addr ip4;
    if (inet_pton(AF_INET, name.c_str(), &ip4) == 1 ||
        inet_pton(AF_INET6, name.c_str(), &ip6) == 1) {
      if (tls->param_set1_ip_asc(tls->get0_param(ssl), name.c_str()) != 1)
        return Status::Unavailable("TLS: " + tls->Errors(ssl));
    } else {
      tls->ctrl(ssl, kSslCtrlSetTlsextHostname, 0, const_cast<char*>(name.c_str()));
      if (tls->set1_host(ssl, name.c_str()) != 1)
        return Status::Unavailable("TLS: " + tls->Errors(ssl));
    }
    const std::string timed_out = "TLS handshake timed out";
    for (;;) {
      tls->err_clear();
      int rc;
      {
        SigpipeBlock quiet;
        rc = tls->connect(ssl);
      }
      if (rc == 1) return Status::Ok();
      const int e = tls->get_error(ssl, rc);
      if (e == kSslErrorWantRead || e == kSslErrorWantWrite) {
        if (Status w = Wait(e == kSslErrorWantRead ? POLLIN : POLLOUT, by, timed_out.c_str());
            !w.ok())
          return w;
        continue;
      }
      return Status::Unavailable("TLS handshake with " + name + ": " + tls->Errors(ssl));
    }
  }

  // Up to n bytes; 0 at the end of the stream.
  Result<size_t> Read(char* buf, size_t n) {
    for (;;) {
      if (ssl != nullptr) {
        tls->err_clear();
        int rc;
        {
          SigpipeBlock quiet;
          rc = tls->read(ssl, buf, static_cast<int>(std::min<size_t>(n, 1 << 30)));
        }
        if (rc > 0) return static_cast<size_t>(rc);
        const int e = tls->get_error(ssl, rc);
        if (e == kSslErrorZeroReturn) return size_t{0};
        if (e == kSslErrorWantRead || e == kSslErrorWantWrite) {
          if (Status w = WaitIo(e == kSslErrorWantRead ? POLLIN : POLLOUT); !w.ok()) return w;
          continue;
        }
        return Status::Unavailable("TLS read: " + tls->Errors(ssl));
      }
      const ssize_t rc = ::recv(fd.get(), buf, n, 0);
      if (rc >= 0) return static_cast<size_t>(rc);
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (Status w = WaitIo(POLLIN); !w.ok()) return w;
        continue;
      }
      return Status::Unavailable(std::string("receive: ") + strerror(errno));
    }
  }

  Status Write(std::string_view data) {
    while (!data.empty()) {
      if (ssl != nullptr) {
        tls->err_clear();
        int rc;
        {
          SigpipeBlock quiet;
          rc = tls->write(ssl, data.data(),
                          static_cast<int>(std::min<size_t>(data.size(), 1 << 30)));
        }
        if (rc > 0) {
          data.remove_prefix(static_cast<size_t>(rc));
          continue;
        }
        const int e = tls->get_error(ssl, rc);
        if (e == kSslErrorWantRead || e == kSslErrorWantWrite) {
          if (Status w = WaitIo(e == kSslErrorWantRead ? POLLIN : POLLOUT); !w.ok()) return w;
          continue;
        }
        return Status::Unavailable("TLS write: " + tls->Errors(ssl));
      }
      const ssize_t rc = ::send(fd.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (rc > 0) {
        data.remove_prefix(static_cast<size_t>(rc));
        continue;
      }
      if (rc < 0 && errno == EINTR) continue;
      if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (Status w = WaitIo(POLLOUT); !w.ok()) return w;
        continue;
      }
      return Status::Unavailable(std::string("send: ") + strerror(errno));
    }
    return Status::Ok();
  }

  // False when the server has closed the kept connection (or sent something unasked).
  bool Idle() const {
    pollfd p{fd.get(), POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }
};

namespace {

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

constexpr size_t kMaxHeaderBytes = 64 * 1024;

// Reads one response from a connection: buffered bytes first, then the socket.
class Reader {
 public:
  explicit Reader(Client::Connection* c) : c_(c) {}
  size_t received() const { return received_; }

  // The next line without its CRLF; kUnavailable past `limit` bytes or at the end of the stream.
  Result<std::string> Line(size_t limit) {
    for (;;) {
      if (const auto nl = buf_.find('\n', pos_); nl != std::string::npos) {
        std::string line = buf_.substr(pos_, nl - pos_);
        pos_ = nl + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return line;
      }
      if (buf_.size() - pos_ > limit)
        return Status::Unavailable("response line longer than " + std::to_string(limit) + " bytes");
      auto more = Fill();
      if (!more.ok()) return more.status();
      if (*more == 0)
        return Status::Unavailable(received_ == 0 ? "empty reply from server"
                                                  : "connection closed in the response headers");
    }
  }

  // Appends exactly n bytes (or, with n == npos, everything to the end of the stream) to out,
  // refusing to let out grow past limit.
  Status Body(size_t n, std::string* out, size_t limit, bool* over) {
    const bool to_end = n == std::string::npos;
    while (to_end || n > 0) {
      if (pos_ == buf_.size()) {
        auto more = Fill();
        if (!more.ok()) return more.status();
        if (*more == 0) {
          if (to_end) return Status::Ok();
          return Status::Unavailable("connection closed with " + std::to_string(n) +
                                     " bytes of the body unread");
        }
      }
      const size_t take = std::min(n, buf_.size() - pos_);
      if (out->size() + take > limit) {
        *over = true;
        return Status::Ok();
      }
      out->append(buf_, pos_, take);
      pos_ += take;
      if (!to_end) n -= take;
    }
    return Status::Ok();
  }

 private:
  Result<size_t> Fill() {
    if (pos_ > 0) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    char chunk[16384];
    auto n = c_->Read(chunk, sizeof(chunk));
    if (!n.ok()) return n.status();
    buf_.append(chunk, *n);
    received_ += *n;
    return *n;
  }

  Client::Connection* c_;
  std::string buf_;
  size_t pos_ = 0;
  size_t received_ = 0;
};

// The status line and headers of a response, as far as the client needs them.
struct Head {
  long status = 0;
  bool close = false;  // the server closes the connection after this response
  bool chunked = false;
  bool have_length = false;
  size_t length = 0;
  std::string content_type;
};

// Reads the status line and headers of the next final response: 1xx answers (100 Continue) are
// read and skipped.
Result<Head> ReadHead(Reader& reader) {
  for (;;) {
    auto line = reader.Line(kMaxHeaderBytes);
    if (!line.ok()) return line.status();
    const std::string_view status_line = *line;
    if (status_line.substr(0, 7) != "HTTP/1." || status_line.size() < 12 || status_line[8] != ' ') {
      return Status::Unavailable("not an HTTP/1.x response: '" +
                                 std::string(status_line.substr(0, 80)) + "'");
    }
    const bool http11 = status_line[7] == '1';
    Head head;
    head.close = !http11;
    head.status = std::strtol(std::string(status_line.substr(9, 3)).c_str(), nullptr, 10);
    if (head.status < 100 || head.status > 999) {
      return Status::Unavailable("bad status line: '" + std::string(status_line.substr(0, 80)) +
                                 "'");
    }
    size_t header_bytes = 0;
    for (;;) {
      auto h = reader.Line(kMaxHeaderBytes);
      if (!h.ok()) return h.status();
      header_bytes += h->size();
      if (header_bytes > kMaxHeaderBytes) {
        return Status::Unavailable("response headers larger than " +
                                   std::to_string(kMaxHeaderBytes) + " bytes");
      }
      if (h->empty()) break;
      const auto colon = h->find(':');
      if (colon == std::string::npos) continue;
      const std::string_view name = Trim(std::string_view(*h).substr(0, colon));
      const std::string_view value = Trim(std::string_view(*h).substr(colon + 1));
      if (IEquals(name, "Content-Type")) {
        head.content_type = std::string(value);
      } else if (IEquals(name, "Content-Length")) {
        char* end = nullptr;
        const std::string v(value);
        const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0' || v[0] == '-') {
          return Status::Unavailable("bad Content-Length '" + v + "'");
        }
        head.have_length = true;
        head.length = static_cast<size_t>(n);
      } else if (IEquals(name, "Transfer-Encoding")) {
        const auto comma = value.rfind(',');
        head.chunked = IEquals(
            Trim(comma == std::string_view::npos ? value : value.substr(comma + 1)), "chunked");
      } else if (IEquals(name, "Connection")) {
        if (value.find("close") != std::string_view::npos ||
            value.find("Close") != std::string_view::npos)
          head.close = true;
        if (!http11 && (value.find("keep-alive") != std::string_view::npos ||
                        value.find("Keep-Alive") != std::string_view::npos))
          head.close = false;
      }
    }
    if (head.status >= 200) return head;  // else an interim answer; the real one follows
  }
}

// A chunked body, its trailers read to the empty line; *over when it would pass limit.
Status ReadChunked(Reader& reader, std::string* body, size_t limit, bool* over) {
  for (;;) {
    auto size_line = reader.Line(1024);
    if (!size_line.ok()) return size_line.status();
    char* end = nullptr;
    const std::string hex =
        std::string(Trim(std::string_view(*size_line).substr(0, size_line->find(';'))));
    const unsigned long long n = std::strtoull(hex.c_str(), &end, 16);
    if (hex.empty() || *end != '\0') {
      return Status::Unavailable("bad chunk size '" + hex.substr(0, 32) + "'");
    }
    if (n == 0) {
      for (;;) {
        auto t = reader.Line(kMaxHeaderBytes);
        if (!t.ok()) return t.status();
        if (t->empty()) return Status::Ok();
      }
    }
    if (n > limit - std::min(limit, body->size())) {
      *over = true;
      return Status::Ok();
    }
    if (Status s = reader.Body(static_cast<size_t>(n), body, limit, over); !s.ok() || *over)
      return s;
    auto crlf = reader.Line(2);
    if (!crlf.ok()) return crlf.status();
    if (!crlf->empty()) return Status::Unavailable("chunk not followed by CRLF");
  }
}

// One response to a request of `method`: its head, then its body by Content-Length, chunks or
// to the end of the connection. *keep: the connection may carry the next request; *over: the
// body would pass limit (nothing more is read).
Status ReadResponse(Reader& reader, std::string_view method, size_t limit, Response* out,
                    bool* keep, bool* over) {
  auto head = ReadHead(reader);
  if (!head.ok()) return head.status();
  out->status = head->status;
  out->content_type = std::move(head->content_type);
  *keep = !head->close;
  if (method == "HEAD" || head->status == 204 || head->status == 304) return Status::Ok();
  if (head->chunked) return ReadChunked(reader, &out->body, limit, over);
  if (head->have_length) {
    if (head->length > limit) {
      *over = true;
      return Status::Ok();
    }
    return reader.Body(head->length, &out->body, limit, over);
  }
  *keep = false;
  return reader.Body(std::string::npos, &out->body, limit, over);
}

}  // namespace

Client::Client(std::string base_url, ClientOptions options)
    : base_url_(std::move(base_url)), options_(options) {
  while (!base_url_.empty() && base_url_.back() == '/')
    base_url_.pop_back();
}

Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

Result<Response> Client::Get(std::string_view path) {
  return Request("GET", path, {}, {});
}

Result<Response> Client::Post(std::string_view path, std::string_view body,
                              std::string_view content_type) {
  return Request("POST", path, body, content_type);
}

Result<Response> Client::Request(std::string_view method, std::string_view path,
                                 std::string_view body, std::string_view content_type) {
  const std::string url = base_url_ + std::string(path);
  const std::string what = std::string(method) + " " + url;
  auto u = ParseUrl(url);
  if (!u.ok()) return Status::InvalidArgument(what + ": " + u.status().message());
  const bool default_port = u->port == (u->scheme == "https" ? 443 : 80);
  std::string request = std::string(method) + " " + u->path + " HTTP/1.1\r\nHost: " + u->host +
                        (default_port ? "" : ":" + std::to_string(u->port)) +
                        "\r\nUser-Agent: scenefarm\r\nAccept: */*\r\n";
  if (!content_type.empty()) request += "Content-Type: " + std::string(content_type) + "\r\n";
  if (method != "GET" && method != "HEAD")
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  request += "\r\n";
  return Exchange(method, *u, request, body, what);
}

Result<Response> Client::Exchange(std::string_view method, const Url& u, const std::string& request,
                                  std::string_view body, const std::string& what) {
  const auto deadline = Clock::now() + options_.timeout;
  auto fail = [&](const Status& s) -> Status {
    conn_.reset();
    return Status(s.code(), what + ": " + s.message());
  };
  for (int attempt = 0;; ++attempt) {
    if (conn_ && (conn_->scheme != u.scheme || conn_->host != u.host || conn_->port != u.port ||
                  !conn_->Idle())) {
      conn_.reset();
    }
    const bool reused = conn_ != nullptr;
    if (!reused) conn_ = std::make_unique<Connection>();
    Connection* c = conn_.get();
    c->deadline = deadline;
    c->timeout = options_.timeout;
    c->cancel = options_.cancel;
    c->resolver = options_.resolver;
    if (!reused) {
      if (Status s = c->Open(u, options_.connect_timeout); !s.ok()) return fail(s);
    }
    Reader reader(c);
    Response response;
    bool keep = false, over = false;
    Status s = c->Write(request);
    if (s.ok() && !body.empty()) s = c->Write(body);
    if (s.ok()) s = ReadResponse(reader, method, options_.max_body_bytes, &response, &keep, &over);
    if (over) {
      conn_.reset();
      return Status::Internal(what + ": response body larger than " +
                              std::to_string(options_.max_body_bytes) + " bytes");
    }
    if (!s.ok()) {
      // A kept connection the server closed while idle, found out before any byte of an answer
      // came back: the request never reached it; send it again once on a fresh connection.
      if (reused && attempt == 0 && reader.received() == 0 &&
          s.code() == StatusCode::kUnavailable) {
        conn_.reset();
        continue;
      }
      return fail(s);
    }
    if (!keep) conn_.reset();
    return response;
  }
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
