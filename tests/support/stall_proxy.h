// A loopback TCP proxy for tests that can freeze forwarding on command: a network stall
// between a client (a worker) and its server (Redis) with every connection left open, as a
// partitioned or congested link looks to both ends. Each connection has its own thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace scenefarm::testing {

class StallProxy {
 public:
  // Listens on a free 127.0.0.1 port and forwards each connection to 127.0.0.1:upstream_port
  // (connected anew per connection, so an upstream restarted on the same port is reached by
  // the client's next connection).
  explicit StallProxy(int upstream_port);
  ~StallProxy();  // closes every connection and joins every thread
  StallProxy(const StallProxy&) = delete;
  StallProxy& operator=(const StallProxy&) = delete;

  int port() const { return port_; }
  // Stops forwarding bytes both ways; connections stay open and new ones are accepted (and
  // connected upstream) but nothing passes until Thaw. Bytes already read are held, not lost.
  void Freeze();
  void Thaw();
  bool frozen() const { return frozen_; }
  // Connections accepted so far.
  int accepted() const { return accepted_; }

 private:
  void AcceptLoop();
  void Forward(int client, int upstream);
  // Blocks while frozen; false once stopping.
  bool WaitThawed();

  int upstream_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> frozen_{false};
  std::atomic<int> accepted_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> fds_;  // every open socket, shut down on destruction
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

}  // namespace scenefarm::testing
