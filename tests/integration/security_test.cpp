// Redis credentials (a password, and an ACL user with its own) reach no log, no metric and no
// error message of any component: the CLI, a worker and the exporter run against a Redis with
// requirepass and an ACL user, through success, Redis going away, and refused credentials, and
// every line they wrote is searched for the passwords.
#include <filesystem>
#include <fstream>

#include "scenefarm/http_client.h"
#include "support/net.h"
#include "support/queue_fixture.h"

namespace scenefarm::testing {
namespace {

using namespace std::chrono_literals;

constexpr char kAdminPw[] = "adm1n-pw-7f3a";
constexpr char kFarmPw[] = "farm-pw-91c2";
constexpr char kWrongPw[] = "wr0ng-pw-55aa";

std::string Get(int port, const std::string& path, long* status = nullptr) {
  http::Client c("http://127.0.0.1:" + std::to_string(port));
  auto r = c.Get(path);
  if (status) *status = r.ok() ? r->status : 0;
  return r.ok() ? r->body : "";
}

TEST(Security, RedisPasswordsReachNoLogMetricOrMessage) {
  RedisServer server(kAdminPw);
  TempDir dir;
  {
    redis::Client admin(server.options());
    auto r = admin.Command(
        {"ACL", "SETUSER", "farm", "on", std::string(">") + kFarmPw, "~*", "&*", "+@all"});
    ASSERT_TRUE(r.ok());
    ASSERT_FALSE(r->is_error()) << r->str;
  }
  const std::string hostport = "127.0.0.1:" + std::to_string(server.port());
  const std::string farm_url = "redis://farm:" + std::string(kFarmPw) + "@" + hostport + "/0";
  const std::string wrong_url = "redis://farm:" + std::string(kWrongPw) + "@" + hostport + "/0";
  std::vector<std::string> outputs;  // everything a CLI run printed, every scrape
  auto cli = [&](std::vector<std::string> args, const std::string& in = "") {
    CliRun r = RunCommand(SCENEFARM_CLI_BIN, args, dir.path(), in);
    outputs.push_back(r.out + r.err);
    return r;
  };

  // Success through the ACL user: enqueue, render, status, scrape.
  std::string lines;
  for (int i = 0; i < 3; ++i)
    lines += R"({"id": "s)" + std::to_string(i) +
             R"(", "workflow": {"1": {"class_type": "EmptyImage", "inputs": {}}}})" + "\n";
  ASSERT_EQ(cli({"--redis-url", farm_url, "enqueue", "-"}, lines).code, 0) << outputs.back();
  auto worker = std::make_unique<Process>(
      std::vector<std::string>{SCENEFARM_TEST_WORKER_BIN, "--redis-url", farm_url, "--worker-id",
                               "w1", "--lease-seconds", "2", "--heartbeat-seconds", "0.2",
                               "--idle-poll-seconds", "0.05", "--log-level", "debug"},
      dir.path() / "worker.log");
  const int port = FreePort();
  auto exporter = std::make_unique<Process>(
      std::vector<std::string>{SCENEFARM_EXPORTER_BIN, "--listen",
                               "127.0.0.1:" + std::to_string(port), "--redis-url", farm_url,
                               "--timeout-seconds", "2", "--log-level", "debug"},
      dir.path() / "exporter.log");
  ASSERT_TRUE(WaitFor([&] { return PortOpen(port); })) << exporter->Log();
  ASSERT_TRUE(WaitFor(
      [&] {
        CliRun r = cli({"--redis-url", farm_url, "status", "--json"});
        if (r.code != 0) return false;
        auto j = nlohmann::json::parse(r.out, nullptr, false);
        return !j.is_discarded() && j["outcomes"]["succeeded"] == 3;
      },
      30s))
      << outputs.back();
  outputs.push_back(Get(port, "/metrics"));
  EXPECT_NE(outputs.back().find("scenefarm_redis_up 1"), std::string::npos) << outputs.back();

  // Refused credentials: the CLI and a second exporter say so without the password.
  CliRun refused = cli({"--redis-url", wrong_url, "status"});
  EXPECT_NE(refused.code, 0);
  EXPECT_NE(refused.err.find("WRONGPASS"), std::string::npos) << refused.err;
  const int port2 = FreePort();
  auto exporter2 = std::make_unique<Process>(
      std::vector<std::string>{SCENEFARM_EXPORTER_BIN, "--listen",
                               "127.0.0.1:" + std::to_string(port2), "--redis-url", wrong_url,
                               "--timeout-seconds", "2", "--log-level", "debug"},
      dir.path() / "exporter-wrong.log");
  ASSERT_TRUE(WaitFor([&] { return PortOpen(port2); })) << exporter2->Log();
  long status = 0;
  outputs.push_back(Get(port2, "/readyz", &status));
  EXPECT_EQ(status, 503);
  outputs.push_back(Get(port2, "/metrics"));
  EXPECT_NE(outputs.back().find("scenefarm_redis_up 0"), std::string::npos) << outputs.back();

  // Redis goes away, then comes back without the ACL user (ACLs were not saved): every
  // component logs the outage and then the refusal.
  server.Stop();
  outputs.push_back(Get(port, "/metrics"));
  EXPECT_NE(outputs.back().find("scenefarm_redis_up 0"), std::string::npos);
  EXPECT_NE(cli({"--redis-url", farm_url, "status"}).code, 0);
  ASSERT_TRUE(WaitFor([&] { return worker->Log().find("redis") != std::string::npos; }, 20s));
  server.Start();
  ASSERT_TRUE(WaitFor([&] { return worker->Log().find("WRONGPASS") != std::string::npos; }, 30s))
      << worker->Log();
  outputs.push_back(Get(port, "/metrics"));
  CliRun after = cli({"--redis-url", farm_url, "status"});
  EXPECT_NE(after.err.find("WRONGPASS"), std::string::npos) << after.err;
  worker->Stop();
  exporter->Stop();
  exporter2->Stop();

  // Search: every log file in the directory (worker, exporters, redis) and every output.
  size_t searched = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path())) {
    if (!e.is_regular_file() || e.path().extension() != ".log") continue;
    outputs.push_back(ReadFile(e.path()));
    ++searched;
  }
  EXPECT_GE(searched, 3u);
  size_t bytes = 0;
  for (const auto& text : outputs) {
    bytes += text.size();
    for (const char* pw : {kAdminPw, kFarmPw, kWrongPw})
      EXPECT_EQ(text.find(pw), std::string::npos) << "password " << pw << " in: " << text;
  }
  EXPECT_GT(bytes, 1000u);  // the search had something to search
}

}  // namespace
}  // namespace scenefarm::testing
