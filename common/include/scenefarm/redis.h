// A Redis client over hiredis (0.14) with reconnect, pipelining and Lua scripts by SHA.
//
// Connection loss never throws and never spins: a call on a broken connection tries to
// reconnect at most once per backoff period (doubling from reconnect_min to reconnect_max) and
// otherwise fails at once with kUnavailable. A client is not thread-safe: one per thread.
//
// Sentinel (redis+sentinel://...): each connect asks the sentinels, in turn, for the master's
// address and checks with ROLE that the server found is the master. A reply of READONLY (the
// server was demoted by a failover), LOADING or MASTERDOWN drops the connection and fails the
// call with kUnavailable, so the next call finds the new master. docs/queue-protocol.md says
// what a failover can lose and how the protocol copes.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "scenefarm/handles.h"
#include "scenefarm/status.h"

namespace scenefarm::redis {

// redis://[[user]:password@]host:port[/db]
// redis+sentinel://[[user]:password@]host:port[,host:port...]/MASTER_NAME[/db]
// (the credentials are the master's; sentinels are asked without them unless they refuse.)
// Either may end in ?wait_replicas=N[&wait_timeout_ms=T]: every script call then waits (WAIT)
// until N replicas have its writes, and fails with kUnavailable when they do not within T ms
// (default 1000), so that an acknowledged write survives a failover.
struct RedisUrl {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user;
  std::string password;
  int db = 0;
  std::vector<std::pair<std::string, int>> sentinels;  // empty: host:port is the server
  std::string master_name;
  int wait_replicas = 0;
  int wait_timeout_ms = 1000;
  bool sentinel() const { return !sentinels.empty(); }
};
Result<RedisUrl> ParseRedisUrl(const std::string& url);

struct Options {
  std::string url = "redis://127.0.0.1:6379/0";
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{5000};
  std::chrono::milliseconds reconnect_min{100};
  std::chrono::milliseconds reconnect_max{5000};
};

// A reply, copied out of hiredis so that it owns its data.
struct Value {
  enum class Type { kNil, kString, kInteger, kArray, kStatus, kError };
  Type type = Type::kNil;
  std::string str;  // kString, kStatus, kError
  int64_t integer = 0;
  std::vector<Value> elements;
  bool is_nil() const { return type == Type::kNil; }
  bool is_error() const { return type == Type::kError; }
  // The value as a string: str for strings, the number for integers, "" otherwise.
  std::string AsString() const;
  int64_t AsInt(int64_t fallback = 0) const;
};

struct Script {
  const char* name;
  const char* source;
};

class Client {
 public:
  explicit Client(Options options);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects now (otherwise the first command does). kUnavailable when Redis cannot be reached,
  // kFailedPrecondition when AUTH or SELECT is refused.
  Status Connect();
  bool connected() const;

  // A Redis error reply is a Value of kError, not a failed Result.
  Result<Value> Command(const std::vector<std::string>& argv);
  // Sends all commands, then reads all replies: one round trip.
  Result<std::vector<Value>> Pipeline(const std::vector<std::vector<std::string>>& commands);
  // EVALSHA with no keys (the scripts compute theirs from the queue prefix); loads the script
  // on first use and again after NOSCRIPT (a restarted or flushed Redis).
  Result<Value> Eval(const Script& script, const std::vector<std::string>& args);
  Result<std::vector<Value>> EvalPipeline(const Script& script,
                                          const std::vector<std::vector<std::string>>& args);

  // BLPOP keys... for at most `block` (at least 1 ms; never "forever"): the key and the value
  // popped, or nullopt when the block ended without one. The socket timeout of this call is the
  // command timeout plus the block, so a long block is not taken for a dead server, and a
  // failover during the block fails the call with kUnavailable like any other.
  Result<std::optional<std::pair<std::string, std::string>>> BlockingPop(
      const std::vector<std::string>& keys, std::chrono::milliseconds block);

  // Round trips made so far (one per Command, one per Pipeline), for benchmarks.
  int64_t round_trips() const { return round_trips_; }

 private:
  Status EnsureConnected();
  void Disconnect(const std::string& why);
  // Sentinel: the master's address from the first sentinel that knows it.
  Result<std::pair<std::string, int>> AskSentinels();
  Status ConnectTo(const std::string& host, int port);
  std::string Where() const;
  Result<std::string> LoadScript(const Script& script);
  Result<std::vector<Value>> RawPipeline(const std::vector<std::vector<std::string>>& commands);

  Options options_;
  RedisUrl url_;
  Status url_status_;
  RedisContext ctx_;  // none while disconnected
  std::string host_;  // the server connected to (the master found, with Sentinel)
  int port_ = 0;
  size_t next_sentinel_ = 0;  // the one that answered last is asked first
  std::chrono::steady_clock::time_point next_attempt_{};
  std::chrono::milliseconds backoff_;
  std::map<std::string, std::string> shas_;  // script name -> sha1
  int64_t round_trips_ = 0;
};

}  // namespace scenefarm::redis
