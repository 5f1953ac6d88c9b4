// The replies of every queue script and command as the client reads them: a loopback server
// speaking RESP answers each command with the next reply of the input (the input is RESP text,
// e.g. a real reply of lease.lua; it is parsed by hiredis and written back, reply by reply,
// cycling), and every Queue call runs against it. A reply of the wrong shape, a Lua error, a
// NOSCRIPT, READONLY or LOADING must give the caller a Status, never a crash, an uncaught
// exception or a loop that does not end.
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "scenefarm/clock.h"
#include "scenefarm/log.h"
#include "scenefarm/queue.h"
#include "scenefarm/redis.h"

namespace {

using namespace std::chrono_literals;
using namespace scenefarm;

void Serialize(const redisReply* r, std::string* out) {
  switch (r->type) {
    case REDIS_REPLY_STRING:
      *out += "$" + std::to_string(r->len) + "\r\n";
      out->append(r->str, r->len);
      *out += "\r\n";
      break;
    case REDIS_REPLY_ARRAY:
      *out += "*" + std::to_string(r->elements) + "\r\n";
      for (size_t i = 0; i < r->elements; ++i)
        Serialize(r->element[i], out);
      break;
    case REDIS_REPLY_INTEGER:
      *out += ":" + std::to_string(r->integer) + "\r\n";
      break;
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      *out += r->type == REDIS_REPLY_STATUS ? "+" : "-";
      out->append(r->str, r->len);
      *out += "\r\n";
      break;
    default:
      *out += "$-1\r\n";
  }
}

// The input up to its first multi-bulk header ("*N" at the start of a line) that declares more
// elements than the input has bytes. hiredis 0.14 allocates an array's element pointers when it
// reads the header, so "*1796158556" alone asked for 14 GB (found by this fuzzer): that is the
// harness reading its own input, not the client reading a server's reply (the fake server writes
// back only values hiredis built, with their real sizes).
std::string_view WithinDeclaredSizes(std::string_view input) {
  for (size_t at = 0; at < input.size();) {
    if (input[at] == '*') {
      uint64_t n = 0;
      size_t i = at + 1;
      while (i < input.size() && std::isdigit(static_cast<unsigned char>(input[i])) &&
             n <= input.size())
        n = n * 10 + static_cast<uint64_t>(input[i++] - '0');
      if (n > input.size()) return input.substr(0, at);
    }
    const size_t eol = input.find('\n', at);
    if (eol == std::string_view::npos) break;
    at = eol + 1;
  }
  return input;
}

// The input's complete RESP values, each written back in canonical form (at most 64).
std::vector<std::string> RepliesOf(std::string_view input) {
  input = WithinDeclaredSizes(input);
  std::vector<std::string> out;
  redisReader* reader = redisReaderCreate();
  redisReaderFeed(reader, input.data(), input.size());
  void* reply = nullptr;
  while (out.size() < 64 && redisReaderGetReply(reader, &reply) == REDIS_OK && reply != nullptr) {
    std::string s;
    Serialize(static_cast<redisReply*>(reply), &s);
    freeReplyObject(reply);
    out.push_back(std::move(s));
  }
  redisReaderFree(reader);
  return out;
}

class FakeRedis {
 public:
  FakeRedis() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_, 16) != 0 || ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      std::abort();
    port_ = ntohs(a.sin_port);
    std::thread([this] { Serve(); }).detach();  // lives as long as the fuzzing process
  }
  int port() const { return port_; }
  void SetReplies(std::vector<std::string> replies) {
    std::lock_guard<std::mutex> lock(mu_);
    replies_ = std::move(replies);
    next_ = 0;
  }

 private:
  void Serve() {
    for (;;) {
      const int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      const int one = 1;  // as redis-server: a reply is not held back for the last one's ACK
      ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      ServeConnection(c);
      ::close(c);
    }
  }
  void ServeConnection(int c) {
    redisReader* reader = redisReaderCreate();
    char buf[16384];
    for (;;) {
      const ssize_t n = ::read(c, buf, sizeof buf);
      if (n <= 0) break;
      redisReaderFeed(reader, buf, static_cast<size_t>(n));
      void* cmd = nullptr;
      int rc;
      while ((rc = redisReaderGetReply(reader, &cmd)) == REDIS_OK && cmd != nullptr) {
        const std::string reply = Answer(static_cast<redisReply*>(cmd));
        freeReplyObject(cmd);
        for (size_t off = 0; off < reply.size();) {
          const ssize_t w = ::write(c, reply.data() + off, reply.size() - off);
          if (w <= 0) break;
          off += static_cast<size_t>(w);
        }
      }
      if (rc != REDIS_OK) break;
    }
    redisReaderFree(reader);
  }
  std::string Answer(const redisReply* cmd) {
    std::string name;
    if (cmd->type == REDIS_REPLY_ARRAY && cmd->elements > 0 &&
        cmd->element[0]->type == REDIS_REPLY_STRING)
      name.assign(cmd->element[0]->str, cmd->element[0]->len);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
    if (name == "SCRIPT") return "$40\r\n" + std::string(40, 'f') + "\r\n";
    if (name == "AUTH" || name == "SELECT" || name == "PING" || name == "CLIENT") return "+OK\r\n";
    std::lock_guard<std::mutex> lock(mu_);
    if (replies_.empty()) return "$-1\r\n";
    return replies_[next_++ % replies_.size()];
  }

  int fd_ = -1;
  int port_ = 0;
  std::mutex mu_;
  std::vector<std::string> replies_;
  size_t next_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static FakeRedis* server = [] {
    log::Init("fuzz", "error");
    return new FakeRedis();
  }();
  static redis::Client* client = [] {
    redis::Options o;
    o.url = "redis://127.0.0.1:" + std::to_string(server->port()) + "/0";
    o.reconnect_min = 1ms;
    o.reconnect_max = 1ms;
    return new redis::Client(o);
  }();
  static SystemClock clock;
  static queue::Queue q(*client, queue::QueueOptions{.name = "fuzz", .script_batch = 3}, clock);
  std::string_view input(reinterpret_cast<const char*>(data), size);
  // A first byte that is a letter (a RESP reply starts with one of *$:+-) picks one call, so
  // the fuzzer can work on one parser at a time (~35x more inputs a second); otherwise every
  // call runs, in order, each reading the next reply.
  int only = -1;
  if (!input.empty() && std::isalpha(static_cast<unsigned char>(input[0]))) {
    only = std::tolower(static_cast<unsigned char>(input[0])) - 'a';
    input.remove_prefix(1);
  }
  server->SetReplies(RepliesOf(input));

  queue::LeasedScene s;
  s.queue = "fuzz";
  s.id = "s1";
  s.attempt = 2;
  s.run = "r1";
  s.doc = R"({"id":"s1","workflow":{"1":{"class_type":"SaveImage"}}})";
  bool flag = false;
  const std::vector<std::function<void()>> calls = {
      [&] {
        (void)q.EnqueueDocs({{"s1", "r1", 0, std::nullopt, s.doc}, {"s2", "r1", 1, 2, s.doc}},
                            "fuzz");
      },
      [&] {
        int64_t due = 0;
        (void)q.Lease("w1", 30s, &flag, &due);
        (void)client->BlockingPop({"sf:{fuzz}:wake", "sf:worker:w1:wake"}, 1ms);
      },
      [&] {
        const queue::WorkerBeat beat{60, 1700000000000, R"({"gpu":[]})"};
        (void)q.Heartbeat("w1", 30s, {s, s}, &beat);
      },
      [&] {
        (void)q.AckAndLease(s, "w1", {{"telemetry", {{"FrameCount", 2}}}}, 30s, "",
                            {"fuzz", "other"});
      },
      [&] {
        (void)q.Ack(s, "w1", {{"telemetry", {{"FrameCount", 2}}}}, &flag);
      },
      [&] { (void)q.Fail(s, "w1", "boom", false, 100ms, "error", &flag, {"history"}); },
      [&] { (void)q.AckCancelled(s, "w1", &flag); },
      [&] { (void)q.Release(s, "w1", "draining"); },
      [&] { (void)q.ReleaseInOutage(s, "w1", "down", &flag); },
      [&] { (void)q.Reclaim(7); },
      [&] { (void)q.Resume("w1", 30s); },
      [&] { (void)q.Cancel("s1", "cli:fuzz"); },
      [&] { (void)q.Retry("s1", "cli:fuzz"); },
      [&] {
        (void)q.Pause("cli:fuzz");
        (void)q.Resume(std::string("cli:fuzz"));
        (void)q.IsPaused();
      },
      [&] { (void)q.Rerun("s1", "again"); },
      [&] { (void)q.Show("s1"); },
      [&] {
        for (const char* state : {"pending", "delayed", "leased", "dead", "done"})
          (void)q.List(state, "", 5);
        (void)q.List("pending", "r1", 5);
      },
      [&] {
        (void)q.DeadBefore(1000, 7);
        (void)q.PurgeDead(1000, 7, "cli:fuzz");
      },
      [&] { (void)q.ExpiredLeases(); },
      [&] { (void)q.LeasesOfGoneWorkers(30s); },
      [&] {
        (void)q.ExpireLeases({{"s1", "w1"}, {"s2", "w2"}, {"s3", "w1"}, {"s4", "w3"}});
      },
      [&] { (void)q.TimeMs(); },
      [&] { (void)q.FinishedRuns(); },
      [&] { (void)q.ClaimFinishedRun("r1"); },
      [&] { (void)q.RunAssembled("r1", 3); },
      [&] { (void)q.GetStatus(30s); },
  };
  if (calls.size() > 26) std::abort();  // one letter a call: keep them at 26 or fewer
  if (only >= 0) {
    calls[static_cast<size_t>(only) % calls.size()]();
  } else {
    for (const auto& call : calls)
      call();
  }
  return 0;
}
