#include "support/redis_server.h"

#include <stdexcept>

#include "support/net.h"

namespace scenefarm::testing {

RedisServer::RedisServer(std::string password, std::string appendfsync)
    : password_(std::move(password)), appendfsync_(std::move(appendfsync)) {
  port_ = FreePort();
  Start();
}

RedisServer::~RedisServer() {
  Stop();
}

void RedisServer::Start() {
  std::vector<std::string> argv = {"/usr/bin/redis-server",
                                   "--port",
                                   std::to_string(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--dir",
                                   dir_.path().string(),
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "yes",
                                   "--appendfsync",
                                   appendfsync_,
                                   "--daemonize",
                                   "no"};
  if (!password_.empty()) {
    argv.push_back("--requirepass");
    argv.push_back(password_);
  }
  proc_ = std::make_unique<Process>(argv, dir_.path() / "redis.log");
  if (!WaitFor([&] { return PortOpen(port_); })) {
    throw std::runtime_error("redis-server did not start: " + proc_->Log());
  }
}

void RedisServer::Stop() {
  if (proc_) proc_->Stop();
  proc_.reset();
}

void RedisServer::Kill() {
  if (proc_) proc_->Kill();
  proc_.reset();
}

void RedisServer::Restart(bool hard) {
  if (hard && proc_) proc_->Kill();
  Stop();
  Start();
}

std::string RedisServer::url() const {
  const std::string auth = password_.empty() ? "" : ":" + password_ + "@";
  return "redis://" + auth + "127.0.0.1:" + std::to_string(port_) + "/0";
}

redis::Options RedisServer::options() const {
  redis::Options o;
  o.url = url();
  o.reconnect_min = std::chrono::milliseconds(10);
  o.reconnect_max = std::chrono::milliseconds(200);
  return o;
}

}  // namespace scenefarm::testing
