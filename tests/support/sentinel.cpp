#include "support/sentinel.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "support/net.h"
#include "support/redis_server.h"

namespace scenefarm::testing {

SentinelSet::SentinelSet(std::string password, int replicas) : password_(std::move(password)) {
  for (int i = 0; i < 1 + replicas; ++i)
    server_ports_.push_back(FreePort());
  for (int i = 0; i < 3; ++i)
    sentinel_ports_.push_back(FreePort());
  servers_.resize(server_ports_.size());
  for (size_t i = 0; i < servers_.size(); ++i)
    StartServer(i, /*may_move=*/true);
  for (size_t i = 0; i < sentinel_ports_.size(); ++i) {
    sentinels_.push_back(
        StartRedisProcess(sentinel_ports_[i], /*may_move=*/true, "", [&](int port) {
          const auto conf = dir_.path() / ("sentinel-" + std::to_string(i) + ".conf");
          std::ofstream f(conf);
          f << "port " << port << "\nbind 127.0.0.1\ndaemonize no\n"
            << "dir " << dir_.path().string() << "\n"
            << "sentinel monitor " << kMaster << " 127.0.0.1 " << server_ports_[0] << " 2\n"
            << "sentinel down-after-milliseconds " << kMaster << " 1000\n"
            << "sentinel failover-timeout " << kMaster << " 5000\n"
            << "sentinel parallel-syncs " << kMaster << " 1\n";
          if (!password_.empty()) f << "sentinel auth-pass " << kMaster << " " << password_ << "\n";
          f.close();
          return std::make_unique<Process>(
              std::vector<std::string>{"/usr/bin/redis-server", conf.string(), "--sentinel"},
              dir_.path() / ("sentinel-" + std::to_string(i) + ".log"));
        }));
  }
  // Ready when every sentinel knows each replica and the replicas have the master's data.
  if (!WaitFor(
          [&] {
            for (int p : sentinel_ports_) {
              const std::string out = Cli(p, {"SENTINEL", "replicas", kMaster});
              for (size_t i = 1; i < server_ports_.size(); ++i)
                if (out.find(std::to_string(server_ports_[i])) == std::string::npos) return false;
            }
            return true;
          },
          std::chrono::seconds(30)))
    throw std::runtime_error("sentinels did not see the replicas: " + sentinels_[0]->Log());
  if (!WaitReplicasCaughtUp(std::chrono::seconds(30)))
    throw std::runtime_error("replicas did not catch up with the master: " +
                             Cli(MasterPort(), {"INFO", "replication"}));
}

SentinelSet::~SentinelSet() {
  for (auto& s : sentinels_)
    if (s) s->Kill();
  for (auto& s : servers_)
    if (s) s->Kill();
}

void SentinelSet::StartServer(size_t i, bool may_move) {
  servers_[i] = StartRedisProcess(server_ports_[i], may_move, password_, [&](int port) {
    std::vector<std::string> argv = RedisServerArgv(port, dir_.path(), "everysec");
    argv.insert(argv.end(), {"--dbfilename", "dump-" + std::to_string(i) + ".rdb",
                             "--appendfilename", "appendonly-" + std::to_string(i) + ".aof",
                             "--appenddirname", "aof-" + std::to_string(i)});
    if (i > 0) {
      argv.insert(argv.end(), {"--replicaof", "127.0.0.1", std::to_string(server_ports_[0])});
    }
    if (!password_.empty()) {
      argv.insert(argv.end(), {"--requirepass", password_, "--masterauth", password_});
    }
    return std::make_unique<Process>(argv, dir_.path() / ("redis-" + std::to_string(i) + ".log"));
  });
}

std::string SentinelSet::Cli(int port, const std::vector<std::string>& args) const {
  std::string cmd = "/usr/bin/redis-cli -h 127.0.0.1 -p " + std::to_string(port);
  // Sentinels here have no password; data servers may.
  const bool sentinel =
      std::find(sentinel_ports_.begin(), sentinel_ports_.end(), port) != sentinel_ports_.end();
  if (!password_.empty() && !sentinel) cmd += " --no-auth-warning -a '" + password_ + "'";
  for (const auto& a : args)
    cmd += " '" + a + "'";
  cmd += " 2>&1";
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
      out.append(buf, n);
    pclose(p);
  }
  return out;
}

std::string SentinelSet::url() const {
  std::string u = "redis+sentinel://";
  if (!password_.empty()) u += ":" + password_ + "@";
  for (size_t i = 0; i < sentinel_ports_.size(); ++i)
    u += (i ? ",127.0.0.1:" : "127.0.0.1:") + std::to_string(sentinel_ports_[i]);
  return u + "/" + kMaster + "/0";
}

int SentinelSet::MasterPort() const {
  const std::string out = Cli(sentinel_ports_[0], {"SENTINEL", "get-master-addr-by-name", kMaster});
  const auto nl = out.find('\n');
  if (nl == std::string::npos) return 0;
  return std::atoi(out.c_str() + nl + 1);
}

int64_t SentinelSet::MasterOffset(int master) const {
  const std::string info = Cli(master, {"INFO", "replication"});
  const auto at = info.find("master_repl_offset:");
  if (info.find("role:master") == std::string::npos || at == std::string::npos) return -1;
  return std::atoll(info.c_str() + at + 19);
}

size_t SentinelSet::ReplicasAtOrPast(int master, int64_t offset) const {
  // One line a replica: slaveK:ip=...,port=P,state=online,offset=N,lag=L
  const std::string info = Cli(master, {"INFO", "replication"});
  size_t n = 0;
  for (size_t at = info.find("state=online,offset="); at != std::string::npos;
       at = info.find("state=online,offset=", at + 1))
    if (std::atoll(info.c_str() + at + 20) >= offset) ++n;
  return n;
}

bool SentinelSet::WaitReplicasCaughtUp(std::chrono::milliseconds timeout) const {
  // The offset is read once and the replicas' acknowledged offsets are waited for until they
  // reach it, which they do for good. Not "equal to the master's offset now": each sentinel
  // PUBLISHes a hello through the master every 2 s, which moves its offset, while a replica
  // acknowledges once a second, so that equality held in 182 of 300 samples 100 ms apart (one
  // master, two replicas, three sentinels, an idle machine) and comes and goes.
  int master = 0;
  int64_t want = -1;
  const size_t running =
      std::count_if(servers_.begin(), servers_.end(), [](const auto& p) { return p != nullptr; });
  return WaitFor(
      [&] {
        if (want < 0) {
          master = MasterPort();
          if (master == 0) return false;
          want = MasterOffset(master);
          if (want < 0) return false;
        }
        return ReplicasAtOrPast(master, want) + 1 == running;
      },
      timeout);
}

std::string SentinelSet::Failover() const {
  return Cli(sentinel_ports_[0], {"SENTINEL", "FAILOVER", kMaster});
}

void SentinelSet::KillServer(int port) {
  for (size_t i = 0; i < server_ports_.size(); ++i)
    if (server_ports_[i] == port && servers_[i]) {
      servers_[i]->Kill();
      servers_[i].reset();
    }
}

void SentinelSet::RestartServer(int port) {
  for (size_t i = 0; i < server_ports_.size(); ++i)
    if (server_ports_[i] == port && !servers_[i]) StartServer(i, /*may_move=*/false);
}

}  // namespace scenefarm::testing
