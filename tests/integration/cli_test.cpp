// The scenefarm CLI as a process against a real redis-server: enqueue, status --json, jobs show.
#include <fstream>

#include "scenefarm/telemetry.h"
#include "support/queue_fixture.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  int code = -1;
  std::string out, err;
};

class CliTest : public ::testing::Test {
 protected:
  CliRun Cli(std::vector<std::string> args, const std::string& stdin_text = "") {
    fs::path in = dir_.path() / "stdin", out = dir_.path() / "stdout", err = dir_.path() / "stderr";
    std::ofstream(in) << stdin_text;
    std::string cmd = std::string(SCENEFARM_CLI_BIN);
    for (const auto& a : args)
      cmd += " '" + a + "'";
    cmd += " <" + in.string() + " >" + out.string() + " 2>" + err.string();
    const int rc = std::system(cmd.c_str());
    return {WEXITSTATUS(rc), ReadFile(out), ReadFile(err)};
  }
  std::vector<std::string> Base() { return {"--redis-url", redis_.url(), "--queue", "scenes"}; }
  std::vector<std::string> With(std::vector<std::string> extra) {
    auto v = Base();
    v.insert(v.end(), extra.begin(), extra.end());
    return v;
  }

  RedisServer redis_;
  TempDir dir_;
};

const char* kScene =
    R"({"id": "%s", "workflow": {"1": {"class_type": "EmptyImage", "inputs": {}}}})";

std::string SceneLine(const std::string& id) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), kScene, id.c_str());
  return buf;
}

TEST_F(CliTest, EnqueueJsonLinesThenStatusAndShow) {
  CliRun r =
      Cli(With({"enqueue", "--run", "story1", "-"}), SceneLine("a") + "\n" + SceneLine("b") + "\n");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "a\nb\n");
  CliRun st = Cli(With({"status", "--json"}));
  ASSERT_EQ(st.code, 0) << st.err;
  auto j = nlohmann::json::parse(st.out);
  EXPECT_EQ(j["queue"], "scenes");
  EXPECT_EQ(j["depth"]["pending"], 2);
  EXPECT_EQ(j["outcomes"]["succeeded"], 0);
  EXPECT_EQ(j["workers"]["live"], 0);
  EXPECT_TRUE(j["oldest_pending_age_seconds"].is_number());
  CliRun show = Cli(With({"jobs", "show", "a", "--json"}));
  ASSERT_EQ(show.code, 0) << show.err;
  auto s = nlohmann::json::parse(show.out);
  EXPECT_EQ(s["id"], "a");
  EXPECT_EQ(s["run"], "story1");
  EXPECT_EQ(s["state"], "pending");
  EXPECT_EQ(s["attempts"], 0);
  CliRun human = Cli(With({"status"}));
  EXPECT_NE(human.out.find("pending 2"), std::string::npos) << human.out << human.err;
}

TEST_F(CliTest, EnqueueArrayFromAFileGeneratesMissingIds) {
  const fs::path f = dir_.path() / "scenes.json";
  std::ofstream(f) << "["
                   << R"({"workflow": {"1": {"class_type": "X"}}}, )" << SceneLine("c") << "]";
  CliRun r = Cli(With({"enqueue", f.string()}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("s-", 0), 0u);
  EXPECT_NE(r.out.find("\nc\n"), std::string::npos);
  EXPECT_NE(r.err.find("enqueued 2 scenes"), std::string::npos);
}

TEST_F(CliTest, MalformedInputEnqueuesNothingAndNamesTheLine) {
  CliRun r = Cli(With({"enqueue", "-"}), SceneLine("ok") + "\n{\"workflow\": 5}\n");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'workflow'"), std::string::npos) << r.err;
  EXPECT_EQ(nlohmann::json::parse(Cli(With({"status", "--json"})).out)["depth"]["pending"], 0);
}

TEST_F(CliTest, DuplicateIdIsReportedAndExitsOne) {
  ASSERT_EQ(Cli(With({"enqueue", "-"}), SceneLine("d")).code, 0);
  CliRun again = Cli(With({"enqueue", "-"}), SceneLine("d"));
  EXPECT_EQ(again.code, 1);
  EXPECT_NE(again.err.find("already exists"), std::string::npos);
}

TEST_F(CliTest, UnknownIdRedisDownAndUsageErrors) {
  CliRun unknown = Cli(With({"jobs", "show", "nope"}));
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("no scene 'nope'"), std::string::npos);
  CliRun down = Cli({"--redis-url", "redis://:pw@127.0.0.1:1/0", "status"});
  EXPECT_EQ(down.code, 1);
  EXPECT_EQ(std::count(down.err.begin(), down.err.end(), '\n'), 1) << down.err;
  EXPECT_EQ(down.err.find("pw@"), std::string::npos);
  EXPECT_EQ(Cli({"frobnicate"}).code, 2);
  EXPECT_EQ(Cli(With({"enqueue"})).code, 2);
}

TEST_F(CliTest, ValidateExitsZeroOnAGoodRunAndTwoWithOneLinePerViolation) {
  const fs::path run = dir_.path() / "artifacts" / "story";
  telemetry::SceneTelemetry t;
  t.scene_id = "s1";
  t.status = "succeeded";
  t.history_exit_reason = "success";
  t.execution_success_detected = true;
  t.execution_success_at = "2026-11-23T10:23:45.000Z";
  t.gpu_name = "NVIDIA GeForce RTX 3090";
  t.vram_before_mb = 100;
  t.vram_after_mb = 90;
  t.done_marker_detected = true;
  fs::create_directories(run / "s1");
  std::ofstream(run / "s1" / "telemetry.json") << t.ToJson().dump();
  ASSERT_TRUE(telemetry::AssembleRun(run, {}).ok());
  CliRun ok = Cli({"validate", run.string()});
  EXPECT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_NE(ok.out.find("telemetry contract holds"), std::string::npos);

  auto meta = nlohmann::json::parse(ReadFile(run / "artifact-metadata.json"));
  meta["Scenes"][0]["Telemetry"]["GPU"].erase("VramDeltaMB");
  meta["Scenes"][0]["Telemetry"]["HistoryExitReason"] = "gone";
  std::ofstream(run / "artifact-metadata.json") << meta.dump();
  CliRun bad = Cli({"validate", run.string()});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.out.find("Scene s1: missing field Telemetry.GPU.VramDeltaMB\n"), std::string::npos)
      << bad.out;
  EXPECT_NE(bad.out.find("Scene s1: Telemetry.HistoryExitReason \"gone\" is not one of"),
            std::string::npos);
  CliRun js = Cli({"validate", "--json", run.string()});
  EXPECT_EQ(js.code, 2);
  auto j = nlohmann::json::parse(js.out);
  EXPECT_EQ(j["valid"], false);
  EXPECT_GE(j["violations"].size(), 2u);

  CliRun none = Cli({"validate", (dir_.path() / "nope").string()});
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.out.find("not a directory"), std::string::npos);
}

}  // namespace
}  // namespace scenefarm::testing
