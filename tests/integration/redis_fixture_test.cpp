// The tests' own redis-server fixture (support/redis_server.h). A port chosen free is free only
// until someone binds it, and ctest runs two test binaries side by side: a server whose port was
// taken in between exits, and the port still answers, served by the other test's server. The
// fixture must notice, and must never go on against the other test's data.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>

#include "support/net.h"
#include "support/redis_server.h"

namespace scenefarm::testing {
namespace {

std::unique_ptr<Process> Plain(const TempDir& dir, int port) {
  return std::make_unique<Process>(RedisServerArgv(port, dir.path(), "no"),
                                   dir.path() / ("redis-" + std::to_string(port) + ".log"));
}

TEST(RedisFixture, APortTakenBeforeTheServerBindsItMovesTheServer) {
  RedisServer other;  // another test's server, already on the port ours was given
  TempDir dir;
  int port = other.port();
  auto ours = StartRedisProcess(port, /*may_move=*/true, "", [&](int p) { return Plain(dir, p); });
  EXPECT_NE(port, other.port());
  EXPECT_EQ(RedisPid(port, ""), ours->pid());
  EXPECT_NE(RedisPid(other.port(), ""), ours->pid());
  EXPECT_GT(RedisPid(other.port(), ""), 0);
}

TEST(RedisFixture, ARestartThatMustKeepItsPortSaysTheAddressIsTaken) {
  RedisServer other;
  TempDir dir;
  int port = other.port();
  try {
    StartRedisProcess(port, /*may_move=*/false, "", [&](int p) { return Plain(dir, p); });
    FAIL() << "started on a port another server holds";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("Address already in use"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(std::to_string(other.port())), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(port, other.port());
}

TEST(RedisFixture, PidIsReadOnlyWithThePasswordAndOnlyFromRedis) {
  RedisServer guarded("fixture-pw");
  EXPECT_GT(RedisPid(guarded.port(), "fixture-pw"), 0);
  EXPECT_EQ(RedisPid(guarded.port(), ""), -1);
  EXPECT_EQ(RedisPid(guarded.port(), "not-the-pw"), -1);
  // Nothing listening: a port this test holds bound (so no one else can take it) but not listening.
  const int held = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(held, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(held, reinterpret_cast<sockaddr*>(&addr), &len);
  EXPECT_EQ(RedisPid(ntohs(addr.sin_port), ""), -1);
  close(held);
}

TEST(RedisFixture, FreePortNeverGivesAPortTwice) {
  std::set<int> ports;
  for (int i = 0; i < 300; ++i)
    EXPECT_TRUE(ports.insert(FreePort()).second);
}

}  // namespace
}  // namespace scenefarm::testing
