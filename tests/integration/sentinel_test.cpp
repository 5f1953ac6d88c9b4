// Redis Sentinel (redis+sentinel:// URLs): clients find the master through the sentinels and
// follow a failover, whether asked for (SENTINEL FAILOVER) or forced (the master SIGKILLed in
// the middle of a run). One master, one replica and three sentinels from Debian's redis-server
// on loopback (tests/support/sentinel.h).
#include <map>

#include "support/net.h"
#include "support/queue_fixture.h"
#include "support/sentinel.h"

namespace scenefarm::testing {
namespace {

using namespace std::chrono_literals;

redis::Options SentinelOptions(const SentinelSet& set) {
  redis::Options o;
  o.url = set.url();
  o.connect_timeout = 500ms;
  o.command_timeout = 2000ms;
  o.reconnect_min = 10ms;
  o.reconnect_max = 200ms;
  return o;
}

// The port of the server this client is connected to, from INFO server.
int ConnectedPort(redis::Client& c) {
  auto r = c.Command({"INFO", "server"});
  if (!r.ok() || r->is_error()) return 0;
  const auto at = r->str.find("tcp_port:");
  return at == std::string::npos ? 0 : std::atoi(r->str.c_str() + at + 9);
}

TEST(Sentinel, ClientFindsTheMasterAndFollowsAFailover) {
  SentinelSet set;
  redis::Client c(SentinelOptions(set));
  ASSERT_TRUE(c.Connect().ok());
  EXPECT_EQ(ConnectedPort(c), set.server_ports()[0]);
  auto role = c.Command({"ROLE"});
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(role->elements.at(0).str, "master");
  ASSERT_TRUE(c.Command({"SET", "before", "1"}).ok());
  ASSERT_TRUE(set.WaitReplicasCaughtUp(20s));

  const std::string answer = set.Failover();
  ASSERT_NE(answer.find("OK"), std::string::npos) << answer;
  ASSERT_TRUE(WaitFor([&] { return set.MasterPort() == set.server_ports()[1]; }, 30s));
  // Until the sentinels demote the old master, it still takes writes (those are lost: the
  // window WAIT, ?wait_replicas=1, closes for scripts). Then the old connection gets READONLY or
  // is dropped: a call fails as unavailable, never with a READONLY reply, and the next one
  // reaches the new master.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = c.Command({"SET", "after", "2"});
        if (!r.ok()) {
          EXPECT_EQ(r.status().code(), StatusCode::kUnavailable) << r.status().message();
          return false;
        }
        EXPECT_FALSE(r->is_error()) << r->str;
        return ConnectedPort(c) == set.server_ports()[1];
      },
      30s));
  auto before = c.Command({"GET", "before"});
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->str, "1");
}

TEST(Sentinel, PasswordIsUsedForTheMasterAndNeverLogged) {
  SentinelSet set("s3cr3t-sentinel-pw");
  redis::Client c(SentinelOptions(set));
  ASSERT_TRUE(c.Connect().ok());
  auto r = c.Command({"SET", "k", "v"});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->is_error()) << r->str;

  // Wrong password: refused with a message that names neither password.
  redis::Options wrong = SentinelOptions(set);
  const std::string good_url = set.url();
  wrong.url = "redis+sentinel://:not-the-pw@" + good_url.substr(good_url.find('@') + 1);
  redis::Client w(wrong);
  Status s = w.Connect();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message().find("not-the-pw"), std::string::npos) << s.message();
  EXPECT_EQ(s.message().find("s3cr3t"), std::string::npos) << s.message();
}

// ?wait_replicas=1: a script's writes count only once a replica has them.
TEST(Sentinel, WaitReplicasRefusesWritesNoReplicaConfirmed) {
  SentinelSet set;
  SystemClock clock;
  // With the replica up, the write is confirmed: WAIT returns as soon as the replica has it, and
  // its timeout is a bound for a loaded machine (300 ms was not enough once under ASan beside
  // another suite), not something the test waits out.
  redis::Options patient = SentinelOptions(set);
  patient.url += "?wait_replicas=1&wait_timeout_ms=20000";
  redis::Client confirmed(patient);
  queue::Queue qc(confirmed, {}, clock);
  auto ok = qc.Enqueue({MakeScene("confirmed")});
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  // With it gone, the wait runs out and the write is refused as not confirmed, even where WAIT's
  // timeout is longer than a command's (the read waits for WAIT's answer).
  redis::Options o = SentinelOptions(set);
  o.command_timeout = 2000ms;
  o.url += "?wait_replicas=1&wait_timeout_ms=4000";
  redis::Client client(o);
  ASSERT_TRUE(client.Connect().ok());
  queue::Queue q(client, {}, clock);
  set.KillServer(set.server_ports()[1]);  // the replica
  auto r = q.Enqueue({MakeScene("unconfirmed")});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("not confirmed by 1 replica"), std::string::npos)
      << r.status().message();
  // Without the URL parameter the same write is taken (asynchronous replication).
  redis::Client plain(SentinelOptions(set));
  queue::Queue q2(plain, {}, clock);
  EXPECT_TRUE(q2.Enqueue({MakeScene("async")}).ok());
}

TEST(Sentinel, NoSentinelAnsweringIsUnavailableNamingTheMaster) {
  redis::Options o;
  o.url = "redis+sentinel://127.0.0.1:" + std::to_string(FreePort()) + "/nosuchmaster";
  o.connect_timeout = 200ms;
  redis::Client c(o);
  Status s = c.Connect();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.message().find("nosuchmaster"), std::string::npos) << s.message();
}

// Workers render through a forced failover: the master is SIGKILLed mid-run. Writes the
// replica had not received are lost (asynchronous replication), which can only send a scene
// around again (rendered twice), never lose one or complete one twice: the new master's state
// is a consistent prefix of the old one's, and the protocol's fencing handles the rest.
TEST(Sentinel, WorkersLoseNoSceneWhenTheMasterIsKilled) {
  SentinelSet set("", /*replicas=*/2);  // one left to confirm writes when the master dies
  TempDir dir;
  constexpr int kScenes = 200;
  redis::Options o = SentinelOptions(set);
  o.url += "?wait_replicas=1";  // enqueue confirmed by the replica: a failover cannot lose it
  redis::Client client(o);
  SystemClock clock;
  queue::Queue q(client, {}, clock);
  std::vector<Scene> scenes;
  for (int i = 0; i < kScenes; ++i) {
    Scene s = MakeScene("scene-" + std::to_string(i));
    s.metadata = {{"fake", {{"ms", 15}}}};
    scenes.push_back(s);
  }
  ASSERT_TRUE(q.Enqueue(scenes).ok());
  ASSERT_TRUE(set.WaitReplicasCaughtUp(20s));

  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 0; i < 3; ++i) {
    const std::string id = "w" + std::to_string(i);
    workers.push_back(std::make_unique<Process>(
        std::vector<std::string>{SCENEFARM_TEST_WORKER_BIN, "--redis-url",
                                 set.url() + "?wait_replicas=1", "--worker-id", id,
                                 "--lease-seconds", "2", "--heartbeat-seconds", "0.25",
                                 "--idle-poll-seconds", "0.02", "--log-level", "info"},
        dir.path() / (id + ".log")));
  }
  // Kill the master once the run is well under way.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = q.GetStatus(30s);
        return st.ok() && st->outcomes["succeeded"] >= kScenes / 4;
      },
      60s));
  const int old_master = set.MasterPort();
  ASSERT_EQ(old_master, set.server_ports()[0]);
  set.KillServer(old_master);
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_TRUE(WaitFor([&] { return set.MasterPort() != old_master; }, 30s));
  const auto promoted_at = std::chrono::steady_clock::now();
  int64_t at_promotion = -1;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = q.GetStatus(30s);
        if (!st.ok()) return false;
        if (at_promotion < 0) at_promotion = st->outcomes["succeeded"];
        return st->outcomes["succeeded"] > at_promotion;
      },
      60s));
  const auto resumed_at = std::chrono::steady_clock::now();

  ASSERT_TRUE(WaitFor(
      [&] {
        auto st = q.GetStatus(30s);
        return st.ok() && st->outcomes["succeeded"] == kScenes && st->depth.pending == 0 &&
               st->depth.leased == 0 && st->depth.delayed == 0;
      },
      90s))
      << "succeeded " << q.GetStatus(30s)->outcomes["succeeded"];
  const auto ms = [](auto d) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  };
  std::cout << "[ figures ] master SIGKILLed -> replica promoted by the sentinels: "
            << ms(promoted_at - killed_at)
            << " ms; promoted -> first scene acknowledged on the new "
            << "master (the other replica confirms its writes): " << ms(resumed_at - promoted_at)
            << " ms\n";
  // Every scene succeeded exactly once in the surviving history, none dead.
  auto st = q.GetStatus(30s);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->depth.dead, 0);
  auto events = client.Command({"XRANGE", "sf:{scenes}:events", "-", "+"});
  ASSERT_TRUE(events.ok());
  std::map<std::string, int> successes;
  for (const auto& e : events->elements) {
    std::map<std::string, std::string> f;
    const auto& kv = e.elements[1].elements;
    for (size_t i = 0; i + 1 < kv.size(); i += 2)
      f[kv[i].str] = kv[i + 1].str;
    if (f["event"] == "succeeded") successes[f["scene"]]++;
  }
  EXPECT_EQ(successes.size(), static_cast<size_t>(kScenes));
  for (const auto& [id, n] : successes)
    EXPECT_EQ(n, 1) << id;
  for (int i = 0; i < kScenes; ++i) {
    auto info = q.Show("scene-" + std::to_string(i));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->state, "succeeded") << info->id;
  }
  // The workers went on after the failover (none exited).
  for (auto& w : workers) {
    EXPECT_TRUE(w->running()) << w->Log().substr(0, 2000);
    EXPECT_EQ(w->Stop(), 0);
  }
}

}  // namespace
}  // namespace scenefarm::testing
