// Issue #16: a succeeded scene can be rendered again on purpose (`scenefarm rerun ID...`),
// recorded in its history, with a new attempt whose render is never an earlier one adopted,
// and without losing the scene: it stops expiring while it waits to be rendered again.
#include <fstream>

#include "support/queue_fixture.h"

namespace scenefarm::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class RerunTest : public QueueTest {
 protected:
  void Succeed(const std::string& id) {
    const auto s = MustLease("w1");
    ASSERT_EQ(s.id, id);
    ASSERT_TRUE(queue_.Ack(s, "w1", {{"telemetry", {{"FrameCount", 24}}}}).ok());
  }
  int64_t Ttl(const std::string& id) {
    return client_.Command({"TTL", "sf:{scenes}:scene:" + id})->AsInt();
  }
  // The scenefarm CLI as a process: exit code and stdout.
  std::pair<int, std::string> Cli(const std::vector<std::string>& args) {
    std::string cmd = std::string(SCENEFARM_CLI_BIN) + " --redis-url " + redis_.url();
    for (const auto& a : args)
      cmd += " '" + a + "'";
    const fs::path out = dir_.path() / "out";
    const int rc = std::system((cmd + " >" + out.string() + " 2>&1").c_str());
    return {WEXITSTATUS(rc), ReadFile(out)};
  }
  TempDir dir_;
};

TEST_F(RerunTest, ASucceededSceneIsRenderedAgainWithANewAttemptRecordedInItsHistory) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b")}).ok());
  Succeed("a");
  EXPECT_GT(Ttl("a"), 0);  // a succeeded scene's record expires after the retention
  ASSERT_TRUE(queue_.Rerun("a", "rerun requested by ops@host: new model").ok());
  EXPECT_EQ(Field("a", "state"), "pending");
  EXPECT_EQ(Ttl("a"), -1) << "a scene waiting to render must not expire";
  // It queues behind b, which was pending before it came back.
  EXPECT_EQ(MustLease("w2").id, "b");
  const auto again = MustLease("w2");
  ASSERT_EQ(again.id, "a");
  EXPECT_EQ(again.attempt, 2);         // a new prompt_id
  EXPECT_EQ(again.failed_attempt, 1);  // attempt 1's render is not adopted
  EXPECT_EQ(again.failures, 0);
  ASSERT_TRUE(queue_.Ack(again, "w2", {{"telemetry", {{"FrameCount", 25}}}}).ok());
  auto info = queue_.Show("a");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, "succeeded");
  EXPECT_EQ(info->result["telemetry"]["FrameCount"], 25);
  EXPECT_EQ(Events("a"), (std::vector<std::string>{"enqueued", "leased", "succeeded", "rerun",
                                                   "leased", "succeeded"}));
  for (const auto& e : info->history) {
    if (e["event"] == "rerun") {
      EXPECT_EQ(e["reason"], "rerun requested by ops@host: new model");
    }
  }
  auto stats = client_.Command({"HGET", "sf:{scenes}:stats", "rerun"});
  EXPECT_EQ(stats->AsString(), "1");
}

TEST_F(RerunTest, TheRunIsOpenAgainUntilTheSceneFinishes) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  Succeed("a");
  EXPECT_EQ(client_.Command({"SISMEMBER", "sf:{scenes}:runs", "run1"})->AsInt(), 0);
  ASSERT_TRUE(queue_.Rerun("a", "again").ok());
  EXPECT_EQ(client_.Command({"SISMEMBER", "sf:{scenes}:runs", "run1"})->AsInt(), 1);
  const auto s = MustLease("w1");
  bool run_complete = false;
  ASSERT_TRUE(queue_.Ack(s, "w1", {}, &run_complete).ok());
  EXPECT_TRUE(run_complete) << "the worker that finishes it assembles the run again";
}

TEST_F(RerunTest, OnlyASucceededSceneIsRerunAndNothingElseChanges) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("p"), MakeScene("l")}).ok());
  EXPECT_EQ(queue_.Rerun("missing", "x").code(), StatusCode::kNotFound);
  Status s = queue_.Rerun("p", "x");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(), "scene 'p' is pending, not succeeded");
  const auto l = MustLease("w1");  // p is first
  EXPECT_EQ(queue_.Rerun(l.id, "x").code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Field(l.id, "state"), "leased");
  EXPECT_EQ(Field(l.id, "attempts"), "1");
  EXPECT_EQ(Events(l.id), (std::vector<std::string>{"enqueued", "leased"}));
}

TEST_F(RerunTest, TheCliRerunsAndSaysWhichItRefused) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b")}).ok());
  Succeed("a");
  auto [code, out] = Cli({"rerun", "a", "b", "nope", "--reason", "colour grading changed"});
  EXPECT_EQ(code, 1) << out;
  EXPECT_NE(out.find("a: back to pending"), std::string::npos) << out;
  EXPECT_NE(out.find("rerun b: scene 'b' is pending, not succeeded"), std::string::npos) << out;
  EXPECT_NE(out.find("rerun nope: no scene 'nope'"), std::string::npos) << out;
  EXPECT_EQ(Field("a", "state"), "pending");
  auto info = queue_.Show("a");
  const auto& last = info->history.back();
  EXPECT_EQ(last["event"], "rerun");
  EXPECT_NE(last["reason"].get<std::string>().find("rerun requested by "), std::string::npos);
  EXPECT_NE(last["reason"].get<std::string>().find(": colour grading changed"), std::string::npos);
  std::tie(code, out) = Cli({"rerun", "--json", "b"});
  EXPECT_EQ(code, 1);
  auto j = nlohmann::json::parse(out.substr(out.find('{')), nullptr, false);
  EXPECT_EQ(j["refused"]["b"], "scene 'b' is pending, not succeeded") << out;
  EXPECT_EQ(Cli({"rerun"}).first, 2);  // no id: usage
}

}  // namespace
}  // namespace scenefarm::testing
