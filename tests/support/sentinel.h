// A Redis Sentinel deployment for tests, all from Debian's redis-server on loopback ports chosen
// free at run time: one master, `replicas` replicas, three sentinels (quorum 2) that declare the
// master down after 1 s. Stopped by PID.
#pragma once

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
  // True once every replica has caught up with the master's replication offset.
  bool ReplicaInSync() const;
  // SENTINEL FAILOVER on the first sentinel; kill -9 of the server on `port`.
  std::string Failover() const;
  void KillServer(int port);
  // The first server (the one killed, if any) started again: it comes back as a replica.
  void RestartServer(int port);

 private:
  void StartServer(size_t i);
  std::string Cli(int port, const std::vector<std::string>& args) const;

  TempDir dir_;
  std::string password_;
  std::vector<int> server_ports_, sentinel_ports_;
  std::vector<std::unique_ptr<Process>> servers_, sentinels_;
};

}  // namespace scenefarm::testing
