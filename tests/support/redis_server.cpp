#include "support/redis_server.h"

#include <cstdlib>
#include <stdexcept>

#include "support/net.h"

namespace scenefarm::testing {

pid_t RedisPid(int port, const std::string& password) {
  redis::Options o;
  o.url = "redis://" + (password.empty() ? "" : ":" + password + "@") +
          "127.0.0.1:" + std::to_string(port) + "/0";
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.command_timeout = std::chrono::milliseconds(5000);  // a guard against a silent listener
  redis::Client c(o);
  auto r = c.Command({"INFO", "server"});
  if (!r.ok() || r->is_error()) return -1;
  const size_t at = r->str.find("\r\nprocess_id:");
  return at == std::string::npos ? -1 : std::atoi(r->str.c_str() + at + 13);
}

std::vector<std::string> RedisServerArgv(int port, const std::filesystem::path& dir,
                                         const std::string& appendfsync) {
  return {"/usr/bin/redis-server",
          "--port",
          std::to_string(port),
          "--bind",
          "127.0.0.1",
          "--dir",
          dir.string(),
          "--save",
          "",
          "--appendonly",
          "yes",
          "--appendfsync",
          appendfsync,
          "--daemonize",
          "no"};
}

std::unique_ptr<Process> StartRedisProcess(
    int& port, bool may_move, const std::string& password,
    const std::function<std::unique_ptr<Process>(int)>& start) {
  for (int attempt = 1;; ++attempt) {
    auto proc = start(port);
    const pid_t pid = proc->pid();
    bool ours = false;
    // Whether ours exited first: a listener that is not Redis may not answer INFO at all.
    WaitFor([&] { return !proc->running() || (ours = RedisPid(port, password) == pid); });
    if (ours) return proc;
    // Ours is gone and something else listens there: the port was taken. (Not the log's
    // "Address already in use": the log is appended to across attempts and restarts.)
    const bool taken = !proc->running() && PortOpen(port);
    const std::string log = proc->Log();
    if (!taken || !may_move || attempt == 5)
      throw std::runtime_error("redis-server on port " + std::to_string(port) +
                               " did not start: " + log);
    port = FreePort();
  }
}

RedisServer::RedisServer(std::string password, std::string appendfsync)
    : password_(std::move(password)), appendfsync_(std::move(appendfsync)) {
  port_ = FreePort();
  Start(/*may_move=*/true);
}

RedisServer::~RedisServer() {
  Stop();
}

void RedisServer::Start() {
  Start(/*may_move=*/false);
}

void RedisServer::Start(bool may_move) {
  proc_ = StartRedisProcess(port_, may_move, password_, [&](int port) {
    std::vector<std::string> argv = RedisServerArgv(port, dir_.path(), appendfsync_);
    if (!password_.empty()) {
      argv.push_back("--requirepass");
      argv.push_back(password_);
    }
    return std::make_unique<Process>(argv, dir_.path() / "redis.log");
  });
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
