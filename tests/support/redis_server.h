// A real redis-server for tests: private directory, free loopback port, AOF on (so a restart
// keeps the data, as a production Redis with AOF does), stopped by PID.
#pragma once

#include <memory>
#include <string>

#include "scenefarm/redis.h"
#include "support/process.h"

namespace scenefarm::testing {

class RedisServer {
 public:
  // password: when non-empty, requirepass is set.
  explicit RedisServer(std::string password = "");
  ~RedisServer();
  // kills it (SIGKILL when hard) and starts it again on the same port and data directory.
  void Restart(bool hard = false);
  void Stop();
  void Start();
  int port() const { return port_; }
  std::string url() const;
  redis::Options options() const;

 private:
  TempDir dir_;
  std::string password_;
  int port_ = 0;
  std::unique_ptr<Process> proc_;
};

}  // namespace scenefarm::testing
