// The scenefarm CLI as a process against a real redis-server: enqueue, status --json, jobs show.
// GCC 12 at -O3 (Release) reports -Wrestrict inside libstdc++'s operator+(const char*,
// std::string&&), e.g. "b" + std::to_string(i): GCC bug 105329, a false positive (fixed in
// GCC 13). Placed before the includes: the warning's location is in <bits/char_traits.h>.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include <fstream>

#include "scenefarm/telemetry.h"
#include "support/net.h"
#include "support/queue_fixture.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;

class CliTest : public ::testing::Test {
 protected:
  CliRun Cli(std::vector<std::string> args, const std::string& stdin_text = "") {
    return RunCommand(SCENEFARM_CLI_BIN, args, dir_.path(), stdin_text);
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
  EXPECT_TRUE(j["workers"]["list"].empty());
  {
    redis::Client client(redis_.options());
    SystemClock clock;
    queue::Queue q(client, queue::QueueOptions{}, clock);
    ASSERT_TRUE(q.Heartbeat("w7", std::chrono::seconds(30), {}).ok());
    ASSERT_TRUE(client.Command({"HSET", queue::WorkerKey("w7"), "busy", "1", "scene", "a"}).ok());
  }
  auto j2 = nlohmann::json::parse(Cli(With({"status", "--json"})).out);
  EXPECT_EQ(j2["workers"]["live"], 1);
  EXPECT_EQ(j2["workers"]["idle"], 0);
  ASSERT_EQ(j2["workers"]["list"].size(), 1u);
  EXPECT_EQ(j2["workers"]["list"][0]["id"], "w7");
  EXPECT_EQ(j2["workers"]["list"][0]["scene"], "a");
  EXPECT_NE(Cli(With({"status"})).out.find("worker w7  busy a  last heartbeat"), std::string::npos);
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

TEST_F(CliTest, UnsafePathsAndOversizedScenesAreRefusedAndNothingIsEnqueued) {
  const std::string save =
      R"({"id": "p", "workflow": {"1": {"class_type": "EmptyImage", "inputs": {}}, )"
      R"("2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": )";
  struct Case {
    std::string line, needle;
  };
  const std::vector<Case> cases = {
      {save + R"("../../etc/x"}}}})", "node '2' filename_prefix"},
      {save + R"("/tmp/x"}}}})", "node '2' filename_prefix"},
      {save + R"("a\u0000b"}}}})", "node '2' filename_prefix"},
      {save + "\"" + std::string(300, 'x') + R"("}}}})", "node '2' filename_prefix"},
      {R"({"id": "../x", "workflow": {"1": {"class_type": "X"}}})", "'id'"},
      {R"({"run": "/abs", "workflow": {"1": {"class_type": "X"}}})", "'run'"},
      {R"({"id": ")" + std::string(129, 'a') + R"(", "workflow": {"1": {"class_type": "X"}}})",
       "'id'"},
  };
  for (const auto& c : cases) {
    CliRun r = Cli(With({"enqueue", "-"}), SceneLine("ok1") + "\n" + c.line + "\n");
    EXPECT_EQ(r.code, 1) << c.line;
    EXPECT_NE(r.err.find("line 2"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.needle), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("nothing enqueued"), std::string::npos) << r.err;
  }
  const std::string padded = R"({"id": "big", "metadata": {"pad": ")" + std::string(500, 'p') +
                             R"("}, "workflow": {"1": {"class_type": "X"}}})";
  CliRun flag = Cli(With({"enqueue", "--max-scene-bytes", "400", "-"}),
                    SceneLine("ok2") + "\n" + padded + "\n");
  EXPECT_EQ(flag.code, 1);
  EXPECT_NE(flag.err.find("line 2: scene document is"), std::string::npos) << flag.err;
  ::setenv("SCENEFARM_MAX_SCENE_BYTES", "400", 1);
  CliRun env = Cli(With({"enqueue", "-"}), SceneLine("ok3") + "\n" + padded + "\n");
  ::unsetenv("SCENEFARM_MAX_SCENE_BYTES");
  EXPECT_EQ(env.code, 1);
  EXPECT_NE(env.err.find("over the limit of 400"), std::string::npos) << env.err;
  EXPECT_EQ(nlohmann::json::parse(Cli(With({"status", "--json"})).out)["depth"]["pending"], 0);
  // Under the default limit (1 MiB) the same document is enqueued.
  CliRun ok = Cli(With({"enqueue", "-"}), padded);
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(nlohmann::json::parse(Cli(With({"status", "--json"})).out)["depth"]["pending"], 1);
}

// Issue #14 P6: many scenes per script call keep the CLI's semantics: one invalid scene anywhere
// enqueues nothing; a duplicate is skipped and reported, the rest enqueued in input order.
TEST_F(CliTest, BatchesKeepNothingEnqueuedOnABadSceneAndSkipDuplicates) {
  std::string input;
  for (int i = 0; i < 1500; ++i)
    input += (i == 1199 ? std::string(R"({"id": "bad", "workflow": 7})")
                        : SceneLine("b" + std::to_string(i))) +
             "\n";
  CliRun bad = Cli(With({"enqueue", "-"}), input);
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.err.find("line 1200"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("nothing enqueued"), std::string::npos) << bad.err;
  EXPECT_EQ(nlohmann::json::parse(Cli(With({"status", "--json"})).out)["depth"]["pending"], 0);

  ASSERT_EQ(Cli(With({"enqueue", "-"}), SceneLine("b700")).code, 0);
  input.clear();
  std::string expected;
  for (int i = 0; i < 1500; ++i) {
    input += SceneLine("b" + std::to_string(i % 1400)) + "\n";
    if (i < 1400 && i != 700) expected += "b" + std::to_string(i) + "\n";
  }
  CliRun dup = Cli(With({"enqueue", "-"}), input);
  EXPECT_EQ(dup.code, 1);
  EXPECT_EQ(dup.out, expected);
  EXPECT_NE(dup.err.find("scene b700 already exists"), std::string::npos);
  EXPECT_NE(dup.err.find("scene b99 already exists"), std::string::npos);
  EXPECT_NE(dup.err.find("enqueued 1399 scenes"), std::string::npos) << dup.err;
  EXPECT_EQ(nlohmann::json::parse(Cli(With({"status", "--json"})).out)["depth"]["pending"], 1400);
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

TEST_F(CliTest, JobsListByStateAndRun) {
  ASSERT_EQ(Cli(With({"enqueue", "--run", "story1", "-"}),
                SceneLine("a") + "\n" + SceneLine("b") + "\n" + SceneLine("c") + "\n")
                .code,
            0);
  ASSERT_EQ(Cli(With({"enqueue", "--run", "other", "-"}), SceneLine("d") + "\n").code, 0);
  redis::Client client(redis_.options());
  SystemClock clock;
  queue::Queue q(client, queue::QueueOptions{}, clock);
  auto a = q.Lease("w1", std::chrono::seconds(60));
  auto b = q.Lease("w1", std::chrono::seconds(60));
  ASSERT_TRUE(q.Fail(**b, "w1", "ComfyUI refused the workflow (400)", true, {}).ok());
  auto pending = nlohmann::json::parse(Cli(With({"jobs", "list", "--json"})).out);
  ASSERT_EQ(pending.size(), 2u);
  EXPECT_EQ(pending[0]["id"], "c");
  EXPECT_EQ(
      nlohmann::json::parse(Cli(With({"jobs", "list", "--run", "other", "--json"})).out).size(),
      1u);
  auto dead = nlohmann::json::parse(Cli(With({"jobs", "list", "--state", "dead", "--json"})).out);
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0]["id"], "b");
  EXPECT_NE(dead[0]["reason"].get<std::string>().find("400"), std::string::npos);
  auto leased =
      nlohmann::json::parse(Cli(With({"jobs", "list", "--state", "leased", "--json"})).out);
  ASSERT_EQ(leased.size(), 1u);
  EXPECT_EQ(leased[0]["worker"], "w1");
  ASSERT_TRUE(q.Ack(**a, "w1", {}).ok());
  auto done = nlohmann::json::parse(Cli(With({"jobs", "list", "--state", "done", "--json"})).out);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0]["state"], "succeeded");
  CliRun text = Cli(With({"jobs", "list", "--state", "dead"}));
  EXPECT_NE(text.out.find("b  run story1  dead  attempts 1"), std::string::npos) << text.out;
  EXPECT_EQ(Cli(With({"jobs", "list", "--state", "weird"})).code, 2);
}

TEST_F(CliTest, CancelRetryAndPurge) {
  ASSERT_EQ(Cli(With({"enqueue", "-"}),
                SceneLine("a") + "\n" + SceneLine("b") + "\n" + SceneLine("c") + "\n")
                .code,
            0);
  redis::Client client(redis_.options());
  SystemClock clock;
  queue::Queue q(client, queue::QueueOptions{}, clock);
  auto a = q.Lease("w1", std::chrono::seconds(60));  // a
  auto b = q.Lease("w1", std::chrono::seconds(60));  // b
  ASSERT_TRUE(q.Fail(**b, "w1", "boom", true, {}).ok());
  CliRun c = Cli(With({"cancel", "c", "a", "nope"}));
  EXPECT_EQ(c.code, 1);
  EXPECT_NE(c.out.find("c: cancelled (was pending)"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("a: cancel requested"), std::string::npos);
  EXPECT_NE(c.err.find("scenefarm: cancel nope: "), std::string::npos) << c.err;
  EXPECT_EQ(Cli(With({"retry"})).code, 2);
  CliRun r = Cli(With({"retry", "--all-dead", "--json"}));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["retried"], nlohmann::json::array({"b"}));
  EXPECT_EQ(q.Show("b")->state, "pending");
  EXPECT_EQ(Cli(With({"retry", "b"})).code, 1);  // not dead any more: says so
  // Dead again, then purged: the dry run changes nothing.
  auto b2 = q.Lease("w1", std::chrono::seconds(60));
  ASSERT_TRUE(q.Fail(**b2, "w1", "boom", true, {}).ok());
  EXPECT_EQ(Cli(With({"purge", "--dead", "--older-than", "1x"})).code, 2);
  CliRun dry = Cli(With({"purge", "--dead", "--older-than", "0s", "--dry-run"}));
  EXPECT_EQ(dry.code, 0);
  EXPECT_NE(dry.out.find("would delete b"), std::string::npos) << dry.out;
  EXPECT_EQ(q.Show("b")->state, "dead");
  EXPECT_EQ(Cli(With({"purge", "--dead", "--older-than", "1d"})).out, "deleted 0 scene(s)\n");
  CliRun purge = Cli(With({"purge", "--dead", "--older-than", "0s", "--json"}));
  EXPECT_EQ(nlohmann::json::parse(purge.out)["purged"], nlohmann::json::array({"b"}));
  EXPECT_EQ(q.Show("b").status().code(), StatusCode::kNotFound);
}

TEST_F(CliTest, RepairDryRunChangesNothingThenRepairs) {
  ASSERT_EQ(Cli(With({"enqueue", "-"}), SceneLine("a") + "\n").code, 0);
  redis::Client client(redis_.options());
  SystemClock clock;
  queue::Queue q(client, queue::QueueOptions{}, clock);
  ASSERT_TRUE(q.Lease("gone-worker", std::chrono::hours(1)).ok());  // never heartbeats
  const fs::path out = dir_.path() / "output" / "scenefarm" / "r" / "a";
  fs::create_directories(out);
  std::ofstream(out / "a1.done.tmp") << "{";
  fs::last_write_time(out / "a1.done.tmp",
                      fs::file_time_type::clock::now() - std::chrono::hours(1));
  std::ofstream(out / "a2.done.tmp") << "{";  // fresh: a producer may be writing it
  const std::vector<std::string> args = {"repair", "--comfyui-output-dir",
                                         (dir_.path() / "output").string(), "--artifacts-dir",
                                         dir_.path().string()};
  auto with = [&](std::vector<std::string> extra) {
    auto v = args;
    v.insert(v.end(), extra.begin(), extra.end());
    return With(v);
  };
  CliRun dry = Cli(with({"--dry-run"}));
  ASSERT_EQ(dry.code, 0) << dry.err;
  EXPECT_NE(dry.out.find("would requeue a (worker gone-worker is gone)"), std::string::npos)
      << dry.out;
  EXPECT_NE(dry.out.find("would delete " + (out / "a1.done.tmp").string()), std::string::npos);
  EXPECT_EQ(dry.out.find("a2.done.tmp"), std::string::npos);
  EXPECT_NE(dry.out.find("disk " + dir_.path().string() + ": "), std::string::npos);
  EXPECT_EQ(q.Show("a")->state, "leased");
  EXPECT_TRUE(fs::exists(out / "a1.done.tmp"));
  CliRun fix = Cli(with({"--json"}));
  ASSERT_EQ(fix.code, 0) << fix.err;
  auto j = nlohmann::json::parse(fix.out);
  EXPECT_EQ(j["reclaimed"], 1);
  EXPECT_EQ(q.Show("a")->state, "pending");
  EXPECT_FALSE(fs::exists(out / "a1.done.tmp"));
  EXPECT_TRUE(fs::exists(out / "a2.done.tmp"));
  EXPECT_EQ(Cli(with({})).out.find("requeue"), std::string::npos);
}

TEST_F(CliTest, RepairAssemblesARunFinishedByAReclaimOnce) {
  redis::Client client(redis_.options());
  SystemClock clock;
  queue::Queue q(client, queue::QueueOptions{}, clock);
  Scene a = MakeScene("a");
  a.run = "story";
  ASSERT_TRUE(q.Enqueue({a}).ok());
  ASSERT_TRUE(q.Lease("gone-worker", std::chrono::hours(1)).ok());  // never heartbeats
  ASSERT_EQ(*q.Cancel("a"), "leased");  // its worker never stops it: repair's reclaim does
  // The scene's telemetry, as its attempt wrote it, under the policy it ran with.
  const fs::path run = dir_.path() / "artifacts" / "story";
  telemetry::SceneTelemetry t;
  t.scene_id = "a";
  t.run = "story";
  t.status = "cancelled";
  t.policy.retry_budget = 3;
  fs::create_directories(run / "a");
  std::ofstream(run / "a" / "telemetry.json") << t.ToJson().dump();
  const std::vector<std::string> repair = {"repair", "--artifacts-dir",
                                           (dir_.path() / "artifacts").string()};
  auto with = [&](std::vector<std::string> extra) {
    auto v = repair;
    v.insert(v.end(), extra.begin(), extra.end());
    return With(v);
  };
  CliRun first = Cli(with({"--json"}));
  ASSERT_EQ(first.code, 0) << first.err;
  auto j = nlohmann::json::parse(first.out);
  EXPECT_EQ(q.Show("a")->state, "cancelled");
  ASSERT_EQ(j["finished_runs"].size(), 1u) << first.out;
  EXPECT_EQ(j["finished_runs"][0]["run"], "story");
  EXPECT_EQ(j["finished_runs"][0]["assembled"], true) << first.out;
  ASSERT_TRUE(fs::exists(run / "run-summary.txt"));
  auto meta = nlohmann::json::parse(ReadFile(run / "artifact-metadata.json"));
  EXPECT_EQ(meta["QueuePolicy"]["SceneRetryBudget"], 3);  // the policy the scene ran under
  EXPECT_EQ(meta["Scenes"].size(), 1u);
  // Claimed once: the next repair has nothing to assemble.
  fs::remove(run / "run-summary.txt");
  CliRun second = Cli(with({"--json"}));
  ASSERT_EQ(second.code, 0) << second.err;
  EXPECT_TRUE(nlohmann::json::parse(second.out)["finished_runs"].empty()) << second.out;
  EXPECT_FALSE(fs::exists(run / "run-summary.txt"));
}

TEST_F(CliTest, PurgeDeletesMoreThanOneBatch) {
  redis::Client client(redis_.options());
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < 450; ++i) {  // more than two script calls' worth (200 each)
    const std::string id = "d" + std::to_string(i);
    cmds.push_back({"HSET", "sf:{scenes}:scene:" + id, "state", "dead", "run", "r"});
    cmds.push_back({"ZADD", "sf:{scenes}:dead", "1000", id});
  }
  ASSERT_TRUE(client.Pipeline(cmds).ok());
  CliRun purge = Cli(With({"purge", "--dead", "--older-than", "1d", "--json"}));
  ASSERT_EQ(purge.code, 0) << purge.err;
  EXPECT_EQ(nlohmann::json::parse(purge.out)["purged"].size(), 450u);
  EXPECT_EQ(client.Command({"ZCARD", "sf:{scenes}:dead"})->integer, 0);
}

TEST_F(CliTest, HealthOneLinePerCheckAndExitCodes) {
  const std::string dead = "http://127.0.0.1:" + std::to_string(FreePort());
  CliRun bad = Cli(With({"health", "--comfyui-url", dead, "--artifacts-dir", dir_.path().string(),
                         "--timeout-seconds", "1"}));
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("ok    redis"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("fail  comfyui   " + dead), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find(" disk      " + dir_.path().string()), std::string::npos) << bad.out;
  CliRun good =
      Cli(With({"health", "--comfyui-url", "", "--artifacts-dir", dir_.path().string(), "--json"}));
  EXPECT_EQ(good.code, 0) << good.out;
  EXPECT_EQ(nlohmann::json::parse(good.out)["healthy"], true);
}

TEST_F(CliTest, RedisDownIsOneClearLineAndExitOne) {
  const std::string url = "redis://127.0.0.1:" + std::to_string(FreePort()) + "/0";
  for (const auto& cmd :
       std::vector<std::vector<std::string>>{{"status"},
                                             {"jobs", "list"},
                                             {"jobs", "show", "x"},
                                             {"cancel", "x"},
                                             {"retry", "x"},
                                             {"purge", "--dead", "--older-than", "1d"},
                                             {"repair", "--dry-run"}}) {
    std::vector<std::string> argv = {"--redis-url", url};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    CliRun r = Cli(argv);
    EXPECT_EQ(r.code, 1) << cmd[0];
    EXPECT_EQ(r.err.rfind("scenefarm: ", 0), 0u) << cmd[0] << ": " << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << cmd[0] << ": " << r.err;
  }
  CliRun h = Cli({"--redis-url", url, "health", "--comfyui-url", ""});
  EXPECT_EQ(h.code, 1);
  EXPECT_NE(h.out.find("fail  redis"), std::string::npos) << h.out;
}

// The watch screen in a real terminal: tmux runs it, capture-pane reads the screen, send-keys
// quits; the pane then shows the primary screen again, without the watch's lines.
TEST_F(CliTest, WatchRedrawsInPlaceAndLeavesTheTerminalClean) {
  ASSERT_EQ(Cli(With({"enqueue", "-"}), SceneLine("a") + "\n" + SceneLine("b") + "\n").code, 0);
  const std::string sock = "sf-watch-" + std::to_string(getpid());
  auto tmux = [&](const std::string& args) {
    const fs::path out = dir_.path() / "tmux.out";
    std::system(
        ("TERM=xterm-256color tmux -L " + sock + " " + args + " > " + out.string() + " 2>&1")
            .c_str());
    return ReadFile(out);
  };
  tmux("new-session -d -s w -x 120 -y 40 '" + std::string(SCENEFARM_CLI_BIN) + " --redis-url " +
       redis_.url() + " watch --interval 0.2'");
  tmux("set-option -t w remain-on-exit on");
  std::string screen;
  ASSERT_TRUE(WaitFor([&] {
    screen = tmux("capture-pane -p -t w");
    return screen.find("pending 2") != std::string::npos;
  })) << screen;
  EXPECT_NE(screen.find("scenefarm watch   queue scenes"), std::string::npos) << screen;
  EXPECT_NE(screen.find("enqueued"), std::string::npos) << screen;  // recent events
  ASSERT_EQ(Cli(With({"enqueue", "-"}), SceneLine("c") + "\n").code, 0);
  ASSERT_TRUE(WaitFor([&] {
    screen = tmux("capture-pane -p -t w");
    return screen.find("pending 3") != std::string::npos;
  })) << screen;
  // Redrawn in place: the header once on the screen, not scrolled copies.
  size_t headers = 0;
  for (size_t pos = 0; (pos = screen.find("scenefarm watch", pos)) != std::string::npos; ++pos)
    ++headers;
  EXPECT_EQ(headers, 1u) << screen;
  tmux("send-keys -t w q");
  EXPECT_TRUE(WaitFor([&] { return tmux("display-message -p -t w '#{pane_dead}'") == "1\n"; }));
  screen = tmux("capture-pane -p -t w");
  EXPECT_EQ(screen.find("scenefarm watch"), std::string::npos) << screen;
  EXPECT_EQ(screen.find("pending"), std::string::npos) << screen;
  tmux("kill-server");
}

// Issue #17: scenefarm pause/resume QUEUE, shown by status (text and --json), recorded with
// who asked.
TEST_F(CliTest, PauseAndResumeAQueueShownInStatus) {
  ASSERT_EQ(Cli(With({"enqueue", "-"}), SceneLine("a") + "\n").code, 0);
  auto j = nlohmann::json::parse(Cli(With({"status", "--json"})).out);
  EXPECT_EQ(j["paused"], false);
  CliRun p = Cli(With({"pause", "scenes", "--json"}));
  ASSERT_EQ(p.code, 0) << p.err;
  auto pj = nlohmann::json::parse(p.out);
  EXPECT_EQ(pj["queue"], "scenes");
  EXPECT_EQ(pj["paused"], true);
  EXPECT_EQ(pj["changed"], true);
  EXPECT_EQ(nlohmann::json::parse(Cli(With({"pause", "scenes", "--json"})).out)["changed"], false);
  j = nlohmann::json::parse(Cli(With({"status", "--json"})).out);
  EXPECT_EQ(j["paused"], true);
  EXPECT_EQ(j["paused_by"].get<std::string>().rfind("cli:", 0), 0u) << j.dump();
  EXPECT_NE(Cli(With({"status"})).out.find("PAUSED by cli:"), std::string::npos);
  // A worker that found the queue paused says so in its hash; status shows it.
  {
    redis::Client client(redis_.options());
    SystemClock clock;
    queue::Queue q(client, queue::QueueOptions{}, clock);
    ASSERT_TRUE(q.Heartbeat("w9", std::chrono::seconds(30), {}).ok());
    ASSERT_TRUE(
        client.Command({"HSET", queue::WorkerKey("w9"), "paused_queues", R"(["scenes"])"}).ok());
  }
  j = nlohmann::json::parse(Cli(With({"status", "--json"})).out);
  ASSERT_EQ(j["workers"]["list"].size(), 1u);
  EXPECT_EQ(j["workers"]["list"][0]["paused_queues"], nlohmann::json::array({"scenes"}));
  EXPECT_NE(Cli(With({"status"})).out.find("worker w9  idle  last heartbeat"), std::string::npos);
  EXPECT_NE(Cli(With({"status"})).out.find("waiting on paused scenes"), std::string::npos);
  {
    redis::Client client(redis_.options());
    SystemClock clock;
    queue::Queue q(client, queue::QueueOptions{}, clock);
    bool paused = false;
    auto r = q.Lease("w1", std::chrono::seconds(30), &paused);
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->has_value());
    EXPECT_TRUE(paused);
  }
  CliRun rs = Cli(With({"resume", "scenes"}));
  ASSERT_EQ(rs.code, 0) << rs.err;
  EXPECT_EQ(rs.out, "queue scenes resumed\n");
  j = nlohmann::json::parse(Cli(With({"status", "--json"})).out);
  EXPECT_EQ(j["paused"], false);
  EXPECT_FALSE(j.contains("paused_by"));
  EXPECT_EQ(Cli(With({"pause", "bad/name"})).code, 2);
}

// scenefarm doc-storage: prints the mode; `hash` sets it and moves the documents of every
// queue's scenes into their hashes (orphan doc keys deleted), so that a version before the doc
// key can run; `key` sets the default back; anything else is a usage error; a stored value it
// does not know is a failure.
TEST_F(CliTest, DocStorageShowsSetsAndMovesDocumentsOfEveryQueue) {
  CliRun show = Cli(With({"doc-storage"}));
  ASSERT_EQ(show.code, 0) << show.err;
  EXPECT_EQ(show.out, "key (the default: sf:doc_storage is not set)\n");
  auto j = nlohmann::json::parse(Cli(With({"doc-storage", "--json"})).out);
  EXPECT_EQ(j, (nlohmann::json{{"doc_storage", "key"}, {"default", true}}));

  ASSERT_EQ(Cli(With({"enqueue", "-"}), SceneLine("a") + "\n" + SceneLine("b") + "\n").code, 0);
  ASSERT_EQ(
      Cli({"--redis-url", redis_.url(), "--queue", "other", "enqueue", "-"}, SceneLine("c")).code,
      0);
  redis::Client client(redis_.options());
  ASSERT_TRUE(client.Command({"SET", "sf:{scenes}:doc:ghost", "{}"}).ok());
  ASSERT_EQ(client.Command({"EXISTS", "sf:{scenes}:doc:a"})->integer, 1);

  CliRun hash = Cli(With({"doc-storage", "hash"}));
  ASSERT_EQ(hash.code, 0) << hash.err;
  EXPECT_NE(hash.out.find("queue scenes: 2 document(s) moved into their scene hashes, 1 orphan"),
            std::string::npos)
      << hash.out;
  EXPECT_NE(hash.out.find("queue other: 1 document(s) moved into their scene hashes, 0 orphan"),
            std::string::npos)
      << hash.out;
  EXPECT_NE(hash.out.find("hash: 3 document(s) moved"), std::string::npos) << hash.out;
  EXPECT_EQ(client.Command({"GET", "sf:doc_storage"})->AsString(), "hash");
  EXPECT_EQ(client.Command({"KEYS", "sf:{*}:doc:*"})->elements.size(), 0u);
  for (const char* key : {"sf:{scenes}:scene:a", "sf:{scenes}:scene:b", "sf:{other}:scene:c"})
    EXPECT_EQ(client.Command({"HEXISTS", key, "doc"})->integer, 1) << key;
  EXPECT_EQ(Cli(With({"doc-storage"})).out, "hash\n");
  j = nlohmann::json::parse(Cli(With({"doc-storage", "hash", "--json"})).out);
  EXPECT_EQ(j["moved"], 0);
  EXPECT_EQ(j["queues"]["other"]["moved"], 0);

  CliRun key = Cli(With({"doc-storage", "key"}));
  ASSERT_EQ(key.code, 0) << key.err;
  EXPECT_EQ(Cli(With({"doc-storage"})).out, "key\n");
  EXPECT_EQ(client.Command({"HEXISTS", "sf:{scenes}:scene:a", "doc"})->integer, 1);  // stays

  CliRun usage = Cli(With({"doc-storage", "hashes"}));
  EXPECT_EQ(usage.code, 2);
  EXPECT_EQ(client.Command({"GET", "sf:doc_storage"})->AsString(), "key");
  ASSERT_TRUE(client.Command({"SET", "sf:doc_storage", "bogus"}).ok());
  CliRun unknown = Cli(With({"doc-storage"}));
  EXPECT_EQ(unknown.code, 1);
  EXPECT_NE(unknown.err.find("sf:doc_storage holds \"bogus\""), std::string::npos) << unknown.err;
  CliRun refused = Cli(With({"enqueue", "-"}), SceneLine("d"));
  EXPECT_EQ(refused.code, 1);
  EXPECT_NE(refused.err.find("sf:doc_storage must be"), std::string::npos) << refused.err;
}

}  // namespace
}  // namespace scenefarm::testing
