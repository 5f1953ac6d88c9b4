#include "scenefarm/redis.h"

#include <hiredis/hiredis.h>

#include <cstdio>
#include <cstdlib>

#include "scenefarm/log.h"

namespace scenefarm::redis {
namespace {

Value Convert(const redisReply* r) {
  Value v;
  switch (r->type) {
    case REDIS_REPLY_STRING:
      v.type = Value::Type::kString;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_STATUS:
      v.type = Value::Type::kStatus;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ERROR:
      v.type = Value::Type::kError;
      v.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      v.type = Value::Type::kInteger;
      v.integer = r->integer;
      break;
    case REDIS_REPLY_ARRAY:
      v.type = Value::Type::kArray;
      for (size_t i = 0; i < r->elements; ++i)
        v.elements.push_back(Convert(r->element[i]));
      break;
    default:
      break;
  }
  return v;
}

// Queues the commands in hiredis' output buffer (sent by the first redisGetReply).
void AppendCommands(redisContext* c, const std::vector<std::vector<std::string>>& commands) {
  for (const auto& argv : commands) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(c, static_cast<int>(argv.size()), ptrs.data(), lens.data());
  }
}

timeval ToTimeval(std::chrono::milliseconds ms) {
  return {static_cast<time_t>(ms.count() / 1000),
          static_cast<suseconds_t>(ms.count() % 1000 * 1000)};
}

}  // namespace

std::string Value::AsString() const {
  if (type == Type::kInteger) return std::to_string(integer);
  if (type == Type::kString || type == Type::kStatus) return str;
  return "";
}

int64_t Value::AsInt(int64_t fallback) const {
  if (type == Type::kInteger) return integer;
  if (type != Type::kString || str.empty()) return fallback;
  char* end = nullptr;
  const long long n = std::strtoll(str.c_str(), &end, 10);
  return *end == '\0' ? n : fallback;
}

namespace {

// "host:port" (port optional: default_port); "[::1]:port" for IPv6 literals.
Status ParseHostPort(const std::string& in, const std::string& url, int default_port,
                     std::string* host, int* port) {
  std::string rest = in;
  *port = default_port;
  size_t colon = std::string::npos;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos)
      return Status::InvalidArgument("Redis URL: bad host in '" + log::RedactUrl(url) + "'");
    if (close + 1 < rest.size() && rest[close + 1] == ':') colon = close + 1;
    *host = rest.substr(1, close - 1);
  } else {
    colon = rest.rfind(':');
    *host = rest.substr(0, colon);
  }
  if (colon != std::string::npos) {
    char* end = nullptr;
    const std::string p = rest.substr(colon + 1);
    *port = static_cast<int>(std::strtol(p.c_str(), &end, 10));
    if (p.empty() || *end != '\0' || *port <= 0 || *port > 65535)
      return Status::InvalidArgument("Redis URL: bad port in '" + log::RedactUrl(url) + "'");
  }
  return Status::Ok();
}

Status ParseDb(const std::string& db, int* out) {
  if (db.empty()) return Status::Ok();
  char* end = nullptr;
  const long n = std::strtol(db.c_str(), &end, 10);
  if (*end != '\0' || n < 0 || n > 1 << 20)
    return Status::InvalidArgument("Redis URL: bad db '" + db + "'");
  *out = static_cast<int>(n);
  return Status::Ok();
}

// wait_replicas=N&wait_timeout_ms=T
Status ParseQuery(const std::string& query, RedisUrl* u) {
  size_t pos = 0;
  while (pos < query.size()) {
    auto amp = query.find('&', pos);
    if (amp == std::string::npos) amp = query.size();
    const std::string kv = query.substr(pos, amp - pos);
    pos = amp + 1;
    const auto eq = kv.find('=');
    const std::string key = kv.substr(0, eq);
    const std::string value = eq == std::string::npos ? "" : kv.substr(eq + 1);
    char* end = nullptr;
    const long n = std::strtol(value.c_str(), &end, 10);
    const bool number = !value.empty() && *end == '\0';
    if (key == "wait_replicas") {
      if (!number || n < 0 || n > 16)
        return Status::InvalidArgument("Redis URL: wait_replicas must be 0..16, got '" + value +
                                       "'");
      u->wait_replicas = static_cast<int>(n);
    } else if (key == "wait_timeout_ms") {
      if (!number || n < 1 || n > 60000)
        return Status::InvalidArgument("Redis URL: wait_timeout_ms must be 1..60000, got '" +
                                       value + "'");
      u->wait_timeout_ms = static_cast<int>(n);
    } else {
      return Status::InvalidArgument("Redis URL: unknown parameter '" + key +
                                     "' (known: wait_replicas, wait_timeout_ms)");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<RedisUrl> ParseRedisUrl(const std::string& url) {
  RedisUrl u;
  const std::string plain = "redis://", sentinel = "redis+sentinel://";
  const bool is_sentinel = url.rfind(sentinel, 0) == 0;
  if (!is_sentinel && url.rfind(plain, 0) != 0) {
    return Status::InvalidArgument(
        "Redis URL must start with redis:// or redis+sentinel://, got '" + log::RedactUrl(url) +
        "'");
  }
  std::string rest = url.substr(is_sentinel ? sentinel.size() : plain.size());
  if (const auto at = rest.rfind('@'); at != std::string::npos) {
    const std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = cred.find(':');
    u.user = colon == std::string::npos ? "" : cred.substr(0, colon);
    u.password = colon == std::string::npos ? cred : cred.substr(colon + 1);
  }
  if (const auto q = rest.find('?'); q != std::string::npos) {
    if (Status s = ParseQuery(rest.substr(q + 1), &u); !s.ok()) return s;
    rest = rest.substr(0, q);
  }
  std::string path;
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (!is_sentinel) {
    if (Status s = ParseDb(path, &u.db); !s.ok()) return s;
    if (!rest.empty()) {
      std::string host;
      if (Status s = ParseHostPort(rest, url, 6379, &host, &u.port); !s.ok()) return s;
      if (!host.empty()) u.host = host;
    }
    return u;
  }
  // Sentinel: host:port[,host:port...]/MASTER_NAME[/db]
  size_t pos = 0;
  while (pos <= rest.size()) {
    const auto comma = rest.find(',', pos);
    const std::string one = rest.substr(pos, comma == std::string::npos ? comma : comma - pos);
    std::string host;
    int port = 26379;
    if (Status s = ParseHostPort(one, url, 26379, &host, &port); !s.ok()) return s;
    if (host.empty())
      return Status::InvalidArgument("Redis URL: empty sentinel address in '" +
                                     log::RedactUrl(url) + "'");
    u.sentinels.emplace_back(host, port);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  const auto slash = path.find('/');
  u.master_name = path.substr(0, slash);
  if (u.master_name.empty())
    return Status::InvalidArgument("Redis URL: redis+sentinel:// needs /MASTER_NAME, got '" +
                                   log::RedactUrl(url) + "'");
  if (slash != std::string::npos) {
    if (Status s = ParseDb(path.substr(slash + 1), &u.db); !s.ok()) return s;
  }
  u.host.clear();
  u.port = 0;
  return u;
}

Client::Client(Options options) : options_(std::move(options)), backoff_(options_.reconnect_min) {
  auto u = ParseRedisUrl(options_.url);
  if (u.ok()) {
    url_ = *u;
    host_ = url_.host;
    port_ = url_.port;
  } else {
    url_status_ = u.status();
  }
}

Client::~Client() = default;

bool Client::connected() const {
  return ctx_ != nullptr && ctx_->err == 0;
}

std::string Client::Where() const {
  if (url_.sentinel() && host_.empty()) return "sentinel master " + url_.master_name;
  return host_ + ":" + std::to_string(port_);
}

void Client::Disconnect(const std::string& why) {
  if (ctx_ == nullptr) return;
  log::Warn("redis_disconnected", {{"host", host_}, {"port", port_}, {"error", why}});
  ctx_.reset();
}

namespace {

// Commands on a short-lived connection (asking a sentinel): the reply of the last one.
Result<Value> AskOnce(const std::string& host, int port,
                      const std::vector<std::vector<std::string>>& commands,
                      std::chrono::milliseconds timeout) {
  RedisContext c(redisConnectWithTimeout(host.c_str(), port, ToTimeval(timeout)));
  if (c == nullptr || c->err) return Status::Unavailable(c ? c->errstr : "out of memory");
  redisSetTimeout(c.get(), ToTimeval(timeout));
  AppendCommands(c.get(), commands);
  Value last;
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(c.get(), &raw) != REDIS_OK || raw == nullptr)
      return Status::Unavailable(c->errstr[0] ? c->errstr : "connection lost");
    last = Convert(static_cast<redisReply*>(raw));
    freeReplyObject(raw);
  }
  return last;
}

// Errors after which this connection is not to the master any more, or not usable yet: drop it
// and let the next call connect (through the sentinels) again.
bool IsFailoverError(const Value& v) {
  if (!v.is_error()) return false;
  return v.str.rfind("READONLY", 0) == 0 || v.str.rfind("LOADING", 0) == 0 ||
         v.str.rfind("MASTERDOWN", 0) == 0 ||
         // a script's write refused on a replica: "ERR ... READONLY You can't write ..."
         v.str.find("READONLY You can't write") != std::string::npos;
}

}  // namespace

Result<std::pair<std::string, int>> Client::AskSentinels() {
  std::string errors;
  const size_t n = url_.sentinels.size();
  for (size_t i = 0; i < n; ++i) {
    const size_t k = (next_sentinel_ + i) % n;
    const auto& [host, port] = url_.sentinels[k];
    const std::string where = host + ":" + std::to_string(port);
    const std::vector<std::string> ask = {"SENTINEL", "get-master-addr-by-name", url_.master_name};
    auto r = AskOnce(host, port, {ask}, options_.connect_timeout);
    if (r.ok() && r->is_error() && r->str.rfind("NOAUTH", 0) == 0 && !url_.password.empty()) {
      // A sentinel with requirepass: ask again with the URL's credentials.
      std::vector<std::string> auth = {"AUTH"};
      if (!url_.user.empty()) auth.push_back(url_.user);
      auth.push_back(url_.password);
      r = AskOnce(host, port, {auth, ask}, options_.connect_timeout);
    }
    if (!r.ok()) {
      errors += " " + where + ": " + r.status().message() + ";";
      continue;
    }
    if (r->type != Value::Type::kArray || r->elements.size() != 2) {
      errors += " " + where + ": " +
                (r->is_error() ? r->str : "does not know master " + url_.master_name) + ";";
      continue;
    }
    const std::string mhost = r->elements[0].AsString();
    const int64_t mport = r->elements[1].AsInt(0);
    if (mhost.empty() || mport <= 0 || mport > 65535) {
      errors += " " + where + ": bad master address;";
      continue;
    }
    next_sentinel_ = k;
    return std::make_pair(mhost, static_cast<int>(mport));
  }
  next_sentinel_ = (next_sentinel_ + 1) % n;
  return Status::Unavailable("redis sentinels for master " + url_.master_name + ":" + errors);
}

Status Client::ConnectTo(const std::string& host, int port) {
  host_ = host;
  port_ = port;
  ctx_.reset(redisConnectWithTimeout(host.c_str(), port, ToTimeval(options_.connect_timeout)));
  const std::string where = Where();
  if (ctx_ == nullptr || ctx_->err) {
    const std::string err = ctx_ ? ctx_->errstr : "out of memory";
    ctx_.reset();
    return Status::Unavailable("redis " + where + ": " + err);
  }
  redisSetTimeout(ctx_.get(), ToTimeval(options_.command_timeout));
  std::vector<std::vector<std::string>> setup;
  if (!url_.password.empty()) {
    setup.push_back(url_.user.empty() ? std::vector<std::string>{"AUTH", url_.password}
                                      : std::vector<std::string>{"AUTH", url_.user, url_.password});
  }
  if (url_.db != 0) setup.push_back({"SELECT", std::to_string(url_.db)});
  // A sentinel's answer may be stale (a failover in progress): only a master is used.
  if (url_.sentinel()) setup.push_back({"ROLE"});
  if (setup.empty()) return Status::Ok();
  auto replies = RawPipeline(setup);
  if (!replies.ok()) return replies.status();
  for (const auto& r : *replies) {
    if (r.is_error()) {
      Disconnect("setup refused");
      // The reply names the failure (WRONGPASS, NOAUTH, ERR DB index); never the password.
      return Status::FailedPrecondition("redis " + where + ": " + r.str);
    }
  }
  if (url_.sentinel()) {
    const Value& role = replies->back();
    const std::string r = role.type == Value::Type::kArray && !role.elements.empty()
                              ? role.elements[0].AsString()
                              : "";
    if (r != "master") {
      Disconnect("not the master (role " + (r.empty() ? "unknown" : r) + ")");
      return Status::Unavailable("redis " + where + ": sentinels named it master of " +
                                 url_.master_name + " but it is " +
                                 (r.empty() ? "not a master" : "a " + r));
    }
  }
  return Status::Ok();
}

Status Client::Connect() {
  if (!url_status_.ok()) return url_status_;
  if (!url_.sentinel()) return ConnectTo(url_.host, url_.port);
  auto master = AskSentinels();
  if (!master.ok()) return master.status();
  if (master->first != host_ || master->second != port_) {
    log::Info("redis_master_found",
              {{"master", url_.master_name}, {"host", master->first}, {"port", master->second}});
  }
  return ConnectTo(master->first, master->second);
}

Status Client::EnsureConnected() {
  if (connected()) return Status::Ok();
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) {
    return Status::Unavailable("redis " + Where() + " unreachable; next reconnect attempt pending");
  }
  Status s = Connect();
  if (s.ok()) {
    backoff_ = options_.reconnect_min;
    return s;
  }
  next_attempt_ = now + backoff_;
  backoff_ = std::min(backoff_ * 2, options_.reconnect_max);
  return s;
}

Result<std::vector<Value>> Client::RawPipeline(
    const std::vector<std::vector<std::string>>& commands) {
  AppendCommands(ctx_.get(), commands);
  ++round_trips_;
  std::vector<Value> out;
  out.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(ctx_.get(), &raw) != REDIS_OK || raw == nullptr) {
      const std::string err = ctx_->errstr[0] ? ctx_->errstr : "connection lost";
      Disconnect(err);
      return Status::Unavailable("redis: " + err);
    }
    out.push_back(Convert(static_cast<redisReply*>(raw)));
    freeReplyObject(raw);
  }
  for (const Value& v : out) {
    if (IsFailoverError(v)) {
      // Demoted by a failover, or still loading its data: nothing was written here. Fail the
      // call as a lost connection, so that callers retry on the master found next time.
      const std::string err = v.str.substr(0, v.str.find('\n'));
      Disconnect(err);
      return Status::Unavailable("redis " + Where() + ": " + err);
    }
  }
  return out;
}

Result<std::vector<Value>> Client::Pipeline(const std::vector<std::vector<std::string>>& commands) {
  if (Status s = EnsureConnected(); !s.ok()) return s;
  if (commands.empty()) return std::vector<Value>{};
  return RawPipeline(commands);
}

Result<Value> Client::Command(const std::vector<std::string>& argv) {
  auto r = Pipeline({argv});
  if (!r.ok()) return r.status();
  return std::move(r->front());
}

Result<std::optional<std::pair<std::string, std::string>>> Client::BlockingPop(
    const std::vector<std::string>& keys, std::chrono::milliseconds block) {
  using Popped = std::optional<std::pair<std::string, std::string>>;
  if (Status s = EnsureConnected(); !s.ok()) return s;
  block = std::max(block, std::chrono::milliseconds(1));
  std::vector<std::string> argv = {"BLPOP"};
  argv.insert(argv.end(), keys.begin(), keys.end());
  char timeout[32];
  std::snprintf(timeout, sizeof(timeout), "%lld.%03lld",
                static_cast<long long>(block.count() / 1000),
                static_cast<long long>(block.count() % 1000));
  argv.emplace_back(timeout);
  redisSetTimeout(ctx_.get(), ToTimeval(options_.command_timeout + block));
  auto r = RawPipeline({argv});
  if (ctx_ != nullptr) redisSetTimeout(ctx_.get(), ToTimeval(options_.command_timeout));
  if (!r.ok()) return r.status();
  const Value& v = r->front();
  if (v.is_error()) return Status::Internal("BLPOP: " + v.str);
  if (v.type != Value::Type::kArray || v.elements.size() != 2) return Popped();
  return Popped(std::make_pair(v.elements[0].AsString(), v.elements[1].AsString()));
}

Result<std::string> Client::LoadScript(const Script& script) {
  auto r = Command({"SCRIPT", "LOAD", script.source});
  if (!r.ok()) return r.status();
  if (r->is_error())
    return Status::Internal(std::string("SCRIPT LOAD ") + script.name + ": " + r->str);
  shas_[script.name] = r->str;
  return r->str;
}

Result<std::vector<Value>> Client::EvalPipeline(const Script& script,
                                                const std::vector<std::vector<std::string>>& args) {
  for (int round = 0; round < 2; ++round) {
    auto it = shas_.find(script.name);
    std::string sha;
    if (it == shas_.end()) {
      auto loaded = LoadScript(script);
      if (!loaded.ok()) return loaded.status();
      sha = *loaded;
    } else {
      sha = it->second;
    }
    std::vector<std::vector<std::string>> commands;
    commands.reserve(args.size());
    for (const auto& a : args) {
      std::vector<std::string> argv = {"EVALSHA", sha, "0"};
      argv.insert(argv.end(), a.begin(), a.end());
      commands.push_back(std::move(argv));
    }
    const bool waits = url_.wait_replicas > 0;
    if (waits) {
      commands.push_back(
          {"WAIT", std::to_string(url_.wait_replicas), std::to_string(url_.wait_timeout_ms)});
    }
    if (commands.empty()) return std::vector<Value>{};
    if (Status s = EnsureConnected(); !s.ok()) return s;
    // WAIT holds the reply up to wait_timeout_ms on the server: the read may take that long on
    // top of the command's own time, or a missing replica would read as a lost connection.
    if (waits) {
      redisSetTimeout(ctx_.get(), ToTimeval(options_.command_timeout +
                                            std::chrono::milliseconds(url_.wait_timeout_ms)));
    }
    auto replies = RawPipeline(commands);
    if (waits && ctx_ != nullptr) redisSetTimeout(ctx_.get(), ToTimeval(options_.command_timeout));
    if (!replies.ok()) return replies.status();
    if (waits) {
      const Value wait = std::move(replies->back());
      replies->pop_back();
      if (wait.is_error() || wait.integer < url_.wait_replicas) {
        // Written on the master, not (yet) on enough replicas: a failover now could lose it.
        // Callers treat this like a connection lost after sending (they retry idempotently).
        return Status::Unavailable(
            "redis " + Where() + ": write not confirmed by " + std::to_string(url_.wait_replicas) +
            " replica(s) within " + std::to_string(url_.wait_timeout_ms) + " ms (" +
            (wait.is_error() ? wait.str : "WAIT answered " + std::to_string(wait.integer)) + ")");
      }
    }
    const bool noscript = !replies->empty() && replies->front().is_error() &&
                          replies->front().str.rfind("NOSCRIPT", 0) == 0;
    if (!noscript) return replies;
    shas_.erase(script.name);  // Redis restarted or SCRIPT FLUSH: load again, send again
  }
  return Status::Internal(std::string("script ") + script.name + " keeps failing with NOSCRIPT");
}

Result<Value> Client::Eval(const Script& script, const std::vector<std::string>& args) {
  auto r = EvalPipeline(script, {args});
  if (!r.ok()) return r.status();
  return std::move(r->front());
}

}  // namespace scenefarm::redis
