#include "support/stall_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <string>

namespace scenefarm::testing {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Writes all of buf; false when the peer is gone.
bool WriteAll(int fd, const char* buf, size_t n) {
  while (n > 0) {
    const ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    buf += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

StallProxy::StallProxy(int upstream_port) : upstream_port_(upstream_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("stall proxy: socket failed");
  const int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a = Loopback(0);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      listen(listen_fd_, 64) != 0) {
    close(listen_fd_);
    throw std::runtime_error("stall proxy: bind/listen failed");
  }
  socklen_t len = sizeof(a);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

StallProxy::~StallProxy() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (int fd : fds_)
      shutdown(fd, SHUT_RDWR);
  }
  cv_.notify_all();
  shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  close(listen_fd_);
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads)
    t.join();
}

void StallProxy::Freeze() {
  frozen_ = true;
}

void StallProxy::Thaw() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    frozen_ = false;
  }
  cv_.notify_all();
}

bool StallProxy::WaitThawed() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !frozen_ || stopping_; });
  return !stopping_;
}

void StallProxy::AcceptLoop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ++accepted_;
    const int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = Loopback(upstream_port_);
    if (upstream < 0 || connect(upstream, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      // The upstream is down (a restarting Redis): the client sees a refused connection.
      if (upstream >= 0) close(upstream);
      close(client);
      continue;
    }
    const int one = 1;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      close(client);
      close(upstream);
      break;
    }
    fds_.push_back(client);
    fds_.push_back(upstream);
    threads_.emplace_back([this, client, upstream] { Forward(client, upstream); });
  }
}

void StallProxy::Forward(int client, int upstream) {
  char buf[64 * 1024];
  pollfd p[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
  bool open = true;
  while (open && !stopping_) {
    if (frozen_ && !WaitThawed()) break;
    const int n = poll(p, 2, 50);
    if (n <= 0) continue;
    // Read only when not frozen (Freeze may come between poll and read: the bytes read are
    // held in buf and written after the thaw, so a stall delays them and never drops them).
    for (int i = 0; i < 2 && open; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t r = recv(p[i].fd, buf, sizeof(buf), 0);
      if (r <= 0) {
        open = false;
        break;
      }
      if (frozen_ && !WaitThawed()) {
        open = false;
        break;
      }
      if (!WriteAll(p[1 - i].fd, buf, static_cast<size_t>(r))) open = false;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  // Closed here, once: the destructor only shuts sockets down.
  fds_.erase(std::remove(fds_.begin(), fds_.end(), client), fds_.end());
  fds_.erase(std::remove(fds_.begin(), fds_.end(), upstream), fds_.end());
  close(client);
  close(upstream);
}

}  // namespace scenefarm::testing
