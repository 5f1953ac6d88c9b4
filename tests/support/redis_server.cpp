#include "support/redis_server.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

#include "support/net.h"

namespace scenefarm::testing {

namespace {

// Where the RESP reply starting at `at` ends in `in`, or npos while it is incomplete. Simple
// strings, errors, integers and bulk strings: what AUTH and INFO answer.
size_t ReplyEnd(const std::string& in, size_t at) {
  const size_t line = in.find("\r\n", at);
  if (line == std::string::npos) return std::string::npos;
  if (in[at] != '$') return line + 2;
  const long n = std::atol(in.c_str() + at + 1);
  const size_t end = line + 2 + (n < 0 ? 0 : static_cast<size_t>(n) + 2);
  return end <= in.size() ? end : std::string::npos;
}

}  // namespace

pid_t RedisPid(int port, const std::string& password) {
  const int fd = ConnectLoopback(port, 5);
  if (fd < 0) return -1;
  std::string req;
  if (!password.empty())
    req += "*2\r\n$4\r\nAUTH\r\n$" + std::to_string(password.size()) + "\r\n" + password + "\r\n";
  req += "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n";
  const size_t replies = password.empty() ? 1 : 2;
  std::string in;
  size_t at = 0, got = 0;
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
    char buf[4096];
    while (got < replies) {
      const size_t end = at < in.size() ? ReplyEnd(in, at) : std::string::npos;
      if (end != std::string::npos) {
        at = end;
        ++got;
        continue;
      }
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  const size_t pid = in.find("\r\nprocess_id:");
  return got == replies && pid != std::string::npos ? std::atoi(in.c_str() + pid + 13) : -1;
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
