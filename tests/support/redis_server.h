// A real redis-server for tests: private directory, free loopback port, AOF on (so a restart
// keeps the data, as a production Redis with AOF does), stopped by PID.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "scenefarm/redis.h"
#include "support/process.h"

namespace scenefarm::testing {

// The pid the redis-server or sentinel answering on 127.0.0.1:port gives in INFO server
// (process_id), or -1 when none answers or it refuses (a password other than `password`).
pid_t RedisPid(int port, const std::string& password);

// redis-server's command line on 127.0.0.1:port with its files in `dir`, in the foreground, AOF
// on with `appendfsync` ("always", "everysec" or "no"), no RDB snapshots; callers add the rest.
std::vector<std::string> RedisServerArgv(int port, const std::filesystem::path& dir,
                                         const std::string& appendfsync);

// Starts a redis-server or sentinel with `start(port)` and waits until the server answering on
// `port` is that process. A port FreePort chose is free only until someone binds it: a test
// running beside this one can take it first, and then ours exits ("Address already in use")
// while PortOpen still sees the port answer, served by the other test's server. With
// `may_move` another port is chosen (written to `port`) and the start tried again, 5 attempts in
// all; without it (a restart that must keep its address) that is an error.
std::unique_ptr<Process> StartRedisProcess(
    int& port, bool may_move, const std::string& password,
    const std::function<std::unique_ptr<Process>(int)>& start);

class RedisServer {
 public:
  // password: when non-empty, requirepass is set. appendfsync: the AOF's fsync policy
  // ("always", "everysec" or "no").
  explicit RedisServer(std::string password = "", std::string appendfsync = "always");
  ~RedisServer();
  // kills it (SIGKILL when hard) and starts it again on the same port and data directory.
  void Restart(bool hard = false);
  void Stop();
  void Start();  // on port(), which it keeps
  void Kill();   // SIGKILL, no restart (Start brings it back on the same port and data)
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

  void Start(bool may_move);
};

}  // namespace scenefarm::testing
