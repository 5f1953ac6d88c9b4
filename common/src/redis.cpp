#include "scenefarm/redis.h"

#include <hiredis/hiredis.h>

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

Result<RedisUrl> ParseRedisUrl(const std::string& url) {
  RedisUrl u;
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) {
    return Status::InvalidArgument("Redis URL must start with redis://, got '" +
                                   log::RedactUrl(url) + "'");
  }
  std::string rest = url.substr(scheme.size());
  if (const auto at = rest.rfind('@'); at != std::string::npos) {
    const std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const auto colon = cred.find(':');
    u.user = colon == std::string::npos ? "" : cred.substr(0, colon);
    u.password = colon == std::string::npos ? cred : cred.substr(colon + 1);
  }
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    const std::string db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      char* end = nullptr;
      u.db = static_cast<int>(std::strtol(db.c_str(), &end, 10));
      if (*end != '\0' || u.db < 0)
        return Status::InvalidArgument("Redis URL: bad db '" + db + "'");
    }
  }
  if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    char* end = nullptr;
    u.port = static_cast<int>(std::strtol(rest.c_str() + colon + 1, &end, 10));
    if (*end != '\0' || u.port <= 0 || u.port > 65535) {
      return Status::InvalidArgument("Redis URL: bad port in '" + log::RedactUrl(url) + "'");
    }
    rest = rest.substr(0, colon);
  }
  if (!rest.empty()) u.host = rest;
  return u;
}

Client::Client(Options options) : options_(std::move(options)), backoff_(options_.reconnect_min) {
  auto u = ParseRedisUrl(options_.url);
  if (u.ok()) {
    url_ = *u;
  } else {
    url_status_ = u.status();
  }
}

Client::~Client() = default;

bool Client::connected() const {
  return ctx_ != nullptr && ctx_->err == 0;
}

void Client::Disconnect(const std::string& why) {
  if (ctx_ == nullptr) return;
  log::Warn("redis_disconnected", {{"host", url_.host}, {"port", url_.port}, {"error", why}});
  ctx_.reset();
}

Status Client::Connect() {
  if (!url_status_.ok()) return url_status_;
  ctx_.reset(
      redisConnectWithTimeout(url_.host.c_str(), url_.port, ToTimeval(options_.connect_timeout)));
  const std::string where = url_.host + ":" + std::to_string(url_.port);
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
  return Status::Ok();
}

Status Client::EnsureConnected() {
  if (connected()) return Status::Ok();
  const auto now = std::chrono::steady_clock::now();
  if (now < next_attempt_) {
    return Status::Unavailable("redis " + url_.host + ":" + std::to_string(url_.port) +
                               " unreachable; next reconnect attempt pending");
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
  for (const auto& argv : commands) {
    std::vector<const char*> ptrs;
    std::vector<size_t> lens;
    for (const auto& a : argv) {
      ptrs.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(ctx_.get(), static_cast<int>(argv.size()), ptrs.data(), lens.data());
  }
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
    auto replies = Pipeline(commands);
    if (!replies.ok()) return replies.status();
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
