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
  // password: when non-empty, requirepass is set. appendfsync: the AOF's fsync policy
  // ("always", "everysec" or "no").
  explicit RedisServer(std::string password = "", std::string appendfsync = "always");
  ~RedisServer();
  // kills it (SIGKILL when hard) and starts it again on the same port and data directory.
  void Restart(bool hard = false);
  void Stop();
  void Start();
  void Kill();  // SIGKILL, no restart (Start brings it back on the same port and data)
  // The data directory (the AOF lies in its appendonlydir/).
  const std::filesystem::path& dir() const { return dir_.path(); }
  int port() const { return port_; }
  std::string url() const;
  redis::Options options() const;

 private:
  TempDir dir_;
  std::string password_;
  std::string appendfsync_;
  int port_ = 0;
  std::unique_ptr<Process> proc_;
};

}  // namespace scenefarm::testing
