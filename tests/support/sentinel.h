// A Redis Sentinel deployment for tests, all from Debian's redis-server on loopback ports chosen
// free at run time: one master, `replicas` replicas, three sentinels (quorum 2) that declare the
// master down after 1 s. Stopped by PID.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "support/process.h"

namespace scenefarm::testing {

class SentinelSet {
 public:
  static constexpr const char* kMaster = "mymaster";
  explicit SentinelSet(std::string password = "", int replicas = 1);
  ~SentinelSet();

  // redis+sentinel://[:password@]127.0.0.1:S1,127.0.0.1:S2,127.0.0.1:S3/mymaster/0
  std::string url() const;
  // The port the sentinels name as master now (0 when they name none).
  int MasterPort() const;
  // Data servers' ports, [0] the first master, then its replicas.
  const std::vector<int>& server_ports() const { return server_ports_; }
  // True once every running replica has acknowledged all the master had written when this was
  // called (its replication offset at the first poll that finds it), within `timeout`.
  bool WaitReplicasCaughtUp(std::chrono::milliseconds timeout) const;
  // SENTINEL FAILOVER on the first sentinel; kill -9 of the server on `port`.
  std::string Failover() const;
  void KillServer(int port);
  // The first server (the one killed, if any) started again: it comes back as a replica.
  void RestartServer(int port);

 private:
  // Server i on server_ports_[i]; `may_move`: another port if that one was taken meanwhile.
  void StartServer(size_t i, bool may_move);
  std::string Cli(int port, const std::vector<std::string>& args) const;
  // The master's replication offset (-1 when `master` does not answer as a master), and how many
  // of its online replicas have acknowledged `offset` or beyond.
  int64_t MasterOffset(int master) const;
  size_t ReplicasAtOrPast(int master, int64_t offset) const;

  TempDir dir_;
  std::string password_;
  std::vector<int> server_ports_, sentinel_ports_;
  std::vector<std::unique_ptr<Process>> servers_, sentinels_;
};

}  // namespace scenefarm::testing
