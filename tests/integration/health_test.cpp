// `scenefarm health` as the container healthchecks and the systemd ComfyUI health timer run it:
// --only picks the checks without empty arguments (the Docker API path drops an "" argument,
// which turned `--comfyui-url ""` into a usage error), and --down-seconds makes a ComfyUI fail
// only when it has answered no /system_stats for that long (comfyui-health@.service restarts it
// then; a VRAM reading never does).
#include <algorithm>
#include <fstream>

#include "support/comfy_harness.h"
#include "support/net.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;

class HealthTest : public ComfyServerTest {
 protected:
  CliRun Health(std::vector<std::string> args) {
    // Redis is never up here: a check that reaches it fails, so --only is seen to skip it.
    args.insert(args.begin(), {"--redis-url",
                               "redis://127.0.0.1:" + std::to_string(dead_port_) + "/0", "health"});
    return RunCommand(SCENEFARM_CLI_BIN, args, dir_.path());
  }
  void FailSystemStats(int count) {
    auto r = Post(
        "/_test/faults",
        {{"http",
          {{{"method", "GET"}, {"path", "/system_stats"}, {"status", 500}, {"count", count}}}}});
    ASSERT_EQ(r.status, 200) << r.body;
  }
  int Lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

  const int dead_port_ = FreePort();
};

TEST_F(HealthTest, OnlyRunsTheNamedChecks) {
  CliRun comfy = Health({"--only", "comfyui", "--comfyui-url", server_->url()});
  EXPECT_EQ(comfy.code, 0) << comfy.out << comfy.err;
  EXPECT_EQ(comfy.out.rfind("ok    comfyui   " + server_->url() + ": answered in", 0), 0u)
      << comfy.out;
  EXPECT_EQ(Lines(comfy.out), 1) << comfy.out;

  CliRun two = Health({"--only", "disk,comfyui", "--comfyui-url", server_->url(), "--artifacts-dir",
                       dir_.path().string(), "--json"});
  EXPECT_EQ(two.code, 0) << two.out << two.err;
  auto j = json::parse(two.out, nullptr, false);
  ASSERT_TRUE(j.is_object()) << two.out;
  ASSERT_EQ(j["checks"].size(), 2u) << two.out;
  EXPECT_EQ(j["checks"][0]["check"], "comfyui");
  EXPECT_EQ(j["checks"][1]["check"], "disk");

  // The same command without --only reaches the (dead) Redis and fails.
  CliRun all = Health({"--comfyui-url", server_->url(), "--timeout-seconds", "1"});
  EXPECT_EQ(all.code, 1) << all.out;
  EXPECT_EQ(all.out.rfind("fail  redis", 0), 0u) << all.out;
}

TEST_F(HealthTest, OnlyRefusesUnknownChecksAndChecksWithoutATarget) {
  CliRun bogus = Health({"--only", "redis,bogus"});
  EXPECT_EQ(bogus.code, 2);
  EXPECT_NE(bogus.err.find("bogus"), std::string::npos) << bogus.err;
  CliRun exporter = Health({"--only", "exporter"});
  EXPECT_EQ(exporter.code, 2);
  EXPECT_EQ(exporter.err, "scenefarm: health: --only exporter needs --exporter-url\n");
  CliRun llm = Health({"--only", "llm"});
  EXPECT_EQ(llm.code, 2);
  EXPECT_EQ(llm.err, "scenefarm: health: --only llm needs --llm-url\n");
  CliRun comfy = Health({"--only", "comfyui", "--comfyui-url", ""});
  EXPECT_EQ(comfy.code, 2);
  EXPECT_EQ(comfy.err, "scenefarm: health: --only comfyui needs --comfyui-url\n");
  EXPECT_EQ(comfy.out, "");
}

TEST_F(HealthTest, OneProbeFailsAtOnceWithoutDownSeconds) {
  FailSystemStats(1);
  CliRun r = Health({"--only", "comfyui", "--comfyui-url", server_->url()});
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.out, "fail  comfyui   " + server_->url() + ": HTTP 500\n");
}

TEST_F(HealthTest, DownSecondsToleratesFailedProbesWithinTheWindow) {
  FailSystemStats(2);
  CliRun r = Health({"--only", "comfyui", "--comfyui-url", server_->url(), "--down-seconds", "60",
                     "--probe-interval-seconds", "0.05"});
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("ok    comfyui"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("after 2 failed probe(s)"), std::string::npos) << r.out;
}

TEST_F(HealthTest, DownSecondsFailsWhenNothingAnsweredForTheWholeWindow) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(FreePort());
  CliRun r = Health({"--only", "comfyui", "--comfyui-url", dead, "--down-seconds", "0.3",
                     "--probe-interval-seconds", "0.05", "--timeout-seconds", "1"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_EQ(r.out.rfind("fail  comfyui   " + dead + ": no /system_stats answer for ", 0), 0u)
      << r.out;
  // Probed again until the window closed, not once.
  const auto n = r.out.find(" probes); last: ");
  ASSERT_NE(n, std::string::npos) << r.out;
  const auto open = r.out.rfind('(', n);
  EXPECT_GE(std::stoi(r.out.substr(open + 1, n - open - 1)), 2) << r.out;
}

TEST_F(HealthTest, LowVramFailsTheCheckButNeverTheLiveness) {
  testing::comfy::ServerOptions small;
  small.vram_total_bytes = 512LL << 20;  // under the 1000 MB critical line, whatever is in use
  small.model_bytes = 0;
  StartServer(small);
  CliRun check = Health({"--only", "comfyui", "--comfyui-url", server_->url()});
  EXPECT_EQ(check.code, 1) << check.out;
  EXPECT_NE(check.out.find("fail  comfyui"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find(" MiB free"), std::string::npos) << check.out;
  CliRun live =
      Health({"--only", "comfyui", "--comfyui-url", server_->url(), "--down-seconds", "30"});
  EXPECT_EQ(live.code, 0) << live.out;
  EXPECT_NE(live.out.find("warn  comfyui"), std::string::npos) << live.out;
}

}  // namespace
}  // namespace scenefarm::testing
