// The telemetry contract: telemetry.json's shape, the run's metadata and summary, and the
// validator catching each missing or wrong field (seed 001, Phase 1).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "scenefarm/telemetry.h"
#include "support/process.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

telemetry::SceneTelemetry Good(const std::string& id) {
  telemetry::SceneTelemetry t;
  t.scene_id = id;
  t.run = "story";
  t.prompt_id = id + "-a1";
  t.worker_id = "w1";
  t.attempt = 1;
  t.status = "succeeded";
  t.duration_seconds = 45.2;
  t.history_attempts = 3;
  t.history_exit_reason = "success";
  t.execution_success_detected = true;
  t.execution_success_at = "2026-11-23T10:23:45.000Z";
  t.gpu_name = "NVIDIA GeForce RTX 3090";
  t.vram_before_mb = 24000.0;
  t.vram_after_mb = 22500.0;
  t.done_marker_detected = true;
  t.done_marker_wait_seconds = 0.2;
  t.frame_count = 2;
  t.frames = {"a1_00001_.png", "a1_00002_.png"};
  return t;
}

class TelemetryTest : public ::testing::Test {
 protected:
  fs::path Run() const { return dir_.path() / "story"; }
  void WriteScene(const telemetry::SceneTelemetry& t) {
    const fs::path d = Run() / t.scene_id;
    fs::create_directories(d);
    std::ofstream(d / "telemetry.json") << t.ToJson().dump(2);
    for (const auto& f : t.frames)
      std::ofstream(d / f) << "png";
  }
  void Assemble() { ASSERT_TRUE(telemetry::AssembleRun(Run(), {}).ok()); }
  json Meta() { return json::parse(ReadFile(Run() / "artifact-metadata.json")); }
  void WriteMeta(const json& m) { std::ofstream(Run() / "artifact-metadata.json") << m.dump(2); }
  std::vector<std::string> Validate() { return telemetry::ValidateRun(Run()); }
  // Edits scene s1's Telemetry in the metadata and in its telemetry.json alike.
  void EditTelemetry(const std::function<void(json&)>& edit) {
    json m = Meta();
    edit(m["Scenes"][0]["Telemetry"]);
    WriteMeta(m);
    std::ofstream(Run() / "s1" / "telemetry.json") << m["Scenes"][0].dump(2);
  }
  TempDir dir_;
};

TEST_F(TelemetryTest, TelemetryJsonHasEverySeedFieldUnderItsExactName) {
  const json t = Good("s1").ToJson()["Telemetry"];
  for (const char* k :
       {"DurationSeconds", "MaxWaitSeconds", "PollIntervalSeconds", "HistoryAttempts",
        "HistoryAttemptLimit", "pollLimit", "HistoryExitReason", "ExecutionSuccessDetected",
        "ExecutionSuccessAt", "PostExecutionTimeoutSeconds", "HistoryPostExecutionTimeoutReached",
        "SceneRetryBudget", "DoneMarkerDetected", "DoneMarkerWaitSeconds", "ForcedCopyTriggered",
        "FrameCount"}) {
    EXPECT_TRUE(t.contains(k)) << k;
  }
  EXPECT_EQ(t["GPU"]["Name"], "NVIDIA GeForce RTX 3090");
  EXPECT_EQ(t["GPU"]["VramBeforeMB"], 24000.0);
  EXPECT_EQ(t["GPU"]["VramAfterMB"], 22500.0);
  EXPECT_EQ(t["GPU"]["VramDeltaMB"], -1500.0);
  EXPECT_TRUE(t["System"]["FallbackNotes"].is_array());
  EXPECT_EQ(t["pollLimit"], "unbounded");
  EXPECT_EQ(telemetry::PollLimit(150), "150");
}

TEST_F(TelemetryTest, AGoodRunValidatesAndTheSummaryCarriesEveryField) {
  WriteScene(Good("s1"));
  auto s2 = Good("s2");
  s2.AddNote("/system_stats unavailable; using nvidia-smi fallback");
  WriteScene(s2);
  Assemble();
  EXPECT_THAT(Validate(), IsEmpty());
  const std::string summary = ReadFile(Run() / "run-summary.txt");
  EXPECT_THAT(summary, HasSubstr("Queue policy: SceneRetryBudget=1 | SceneMaxWaitSeconds=600"));
  EXPECT_THAT(summary, HasSubstr("[Scene s1] Telemetry: DurationSeconds=45.2 | MaxWaitSeconds="));
  EXPECT_THAT(summary, HasSubstr("pollLimit=unbounded | SceneRetryBudget=1"));
  EXPECT_THAT(summary, HasSubstr("VramDeltaMB=-1500.0"));
  EXPECT_THAT(summary, HasSubstr("fallback=/system_stats unavailable; using nvidia-smi fallback"));
  EXPECT_EQ(Meta()["Totals"]["Frames"], 4);
}

TEST_F(TelemetryTest, AVideoIsAFileButNotAFrame) {
  auto t = Good("s1");
  t.frames = {};
  t.frame_count = 0;
  t.files = {{"a1_00001.mp4", "video"}, {"a1_00001.flac", "audio"}};
  WriteScene(t);
  std::ofstream(Run() / "s1" / "a1_00001.mp4") << "mp4";
  std::ofstream(Run() / "s1" / "a1_00001.flac") << "flac";
  auto s2 = Good("s2");
  s2.files = {{"a1_00001_.png", "image"}, {"a1_00002_.png", "image"}, {"a1_00003.gif", "video"}};
  WriteScene(s2);
  std::ofstream(Run() / "s2" / "a1_00003.gif") << "gif";
  Assemble();
  EXPECT_THAT(Validate(), IsEmpty());
  EXPECT_EQ(Meta()["Scenes"][0]["Files"][0], json({{"Name", "a1_00001.mp4"}, {"Kind", "video"}}));
  EXPECT_EQ(Meta()["Scenes"][0]["Telemetry"]["FrameCount"], 0);
  // A listed file that is not there, a kind that is not one of the three, a FrameCount that
  // is not the images' count.
  fs::remove(Run() / "s1" / "a1_00001.mp4");
  json m = Meta();
  m["Scenes"][1]["Files"][2]["Kind"] = "hologram";
  m["Scenes"][1]["Telemetry"]["FrameCount"] = 3;
  WriteMeta(m);
  std::ofstream(Run() / "s2" / "telemetry.json") << m["Scenes"][1].dump(2);
  const auto v = Validate();
  EXPECT_THAT(v, Contains(HasSubstr("Files lists a1_00001.mp4 but the scene directory has no")));
  EXPECT_THAT(v, Contains(HasSubstr("not {Name, Kind: image|video|audio}")));
  EXPECT_THAT(v, Contains(HasSubstr("FrameCount=3 but 2 frame files")));
}

// Each field of the contract removed from scene s1 is reported, naming the field.
// A metadata file edited by hand: a SceneId that would name a directory outside the run is a
// violation and that directory is never read; fields of the wrong type are violations, not
// exceptions (found while writing tests/fuzz/fuzz_run_readers.cpp).
TEST_F(TelemetryTest, SceneIdsThatLeaveTheRunAndWrongTypesAreViolationsNotReads) {
  WriteScene(Good("s1"));
  Assemble();
  // A scene directory beside the run, with a telemetry.json that would match if it were read.
  json m = Meta();
  fs::create_directories(dir_.path() / "outside");
  std::ofstream(dir_.path() / "outside" / "telemetry.json") << m["Scenes"][0].dump(2);
  m["Scenes"][0]["SceneId"] = "../outside";
  m["Scenes"].push_back(m["Scenes"][0]);
  m["Scenes"][1]["SceneId"] = 42;
  WriteMeta(m);
  std::vector<std::string> v;
  ASSERT_NO_THROW(v = Validate());
  EXPECT_THAT(v, Contains(HasSubstr("Scene ../outside: SceneId is not a scene id")));
  EXPECT_THAT(v, Contains(HasSubstr("Scene ?: missing field SceneId")));
  EXPECT_THAT(v, Not(Contains(HasSubstr("telemetry.json"))));  // no scene directory was read
}

TEST_F(TelemetryTest, EachMissingFieldIsAViolationNamingIt) {
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"", "DurationSeconds"},
      {"", "MaxWaitSeconds"},
      {"", "PollIntervalSeconds"},
      {"", "HistoryAttempts"},
      {"", "HistoryAttemptLimit"},
      {"", "pollLimit"},
      {"", "HistoryExitReason"},
      {"", "ExecutionSuccessDetected"},
      {"", "ExecutionSuccessAt"},
      {"", "PostExecutionTimeoutSeconds"},
      {"", "HistoryPostExecutionTimeoutReached"},
      {"", "SceneRetryBudget"},
      {"", "DoneMarkerDetected"},
      {"", "DoneMarkerWaitSeconds"},
      {"", "ForcedCopyTriggered"},
      {"", "FrameCount"},
      {"GPU", "Name"},
      {"GPU", "VramBeforeMB"},
      {"GPU", "VramAfterMB"},
      {"GPU", "VramDeltaMB"},
      {"System", "FallbackNotes"},
      {"", "GPU"},
      {"", "System"}};
  for (const auto& [parent, key] : fields) {
    fs::remove_all(Run());
    WriteScene(Good("s1"));
    Assemble();
    EditTelemetry([&](json& t) { (parent.empty() ? t : t[parent]).erase(key); });
    const auto v = Validate();
    const std::string name = (parent.empty() ? "" : parent + ".") + key;
    EXPECT_THAT(v, ::testing::Contains(HasSubstr("missing field Telemetry." + name))) << name;
  }
}

TEST_F(TelemetryTest, WrongValuesAreViolations) {
  struct Case {
    std::string what;
    std::function<void(json&)> edit;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"exit reason", [](json& t) { t["HistoryExitReason"] = "timeout"; }, "is not one of"},
      {"pollLimit", [](json& t) { t["pollLimit"] = "150"; }, "Telemetry.pollLimit is \"150\""},
      {"delta", [](json& t) { t["GPU"]["VramDeltaMB"] = 5.0; }, "VramDeltaMB is not"},
      {"type", [](json& t) { t["FrameCount"] = "2"; }, "FrameCount has the wrong type"},
      {"negative", [](json& t) { t["DurationSeconds"] = -1; }, "DurationSeconds is negative"},
      {"time", [](json& t) { t["ExecutionSuccessAt"] = "yesterday"; }, "not an ISO 8601"},
      {"postExecution", [](json& t) { t["HistoryExitReason"] = "postExecution"; },
       "HistoryPostExecutionTimeoutReached is false"},
      {"null vram without a note", [](json& t) { t["GPU"]["VramAfterMB"] = nullptr; },
       "VramAfterMB is null"},
      {"frames", [](json& t) { t["FrameCount"] = 5; }, "FrameCount=5 but 2 frame files"},
      {"forced copy without debug", [](json& t) { t["ForcedCopyTriggered"] = true; },
       "no forced-copy-debug"},
  };
  for (const auto& c : cases) {
    fs::remove_all(Run());
    WriteScene(Good("s1"));
    Assemble();
    EditTelemetry(c.edit);
    EXPECT_THAT(Validate(), ::testing::Contains(HasSubstr(c.expect))) << c.what;
  }
}

TEST_F(TelemetryTest, NullVramIsAllowedWhenAFallbackNoteSaysWhy) {
  auto t = Good("s1");
  t.vram_before_mb.reset();
  t.vram_after_mb.reset();
  t.gpu_name.clear();
  t.AddNote("GPU telemetry unavailable: /system_stats, NVML and nvidia-smi all failed");
  WriteScene(t);
  Assemble();
  EXPECT_THAT(Validate(), IsEmpty());
}

TEST_F(TelemetryTest, TheSummaryMustAgreeWithTheMetadata) {
  auto s1 = Good("s1");
  s1.AddNote("Forced copy after stability retries");
  WriteScene(s1);
  Assemble();
  const std::string summary = ReadFile(Run() / "run-summary.txt");
  auto rewrite = [&](const std::string& from, const std::string& to) {
    std::string s = summary;
    const auto pos = s.find(from);
    ASSERT_NE(pos, std::string::npos) << from;
    s.replace(pos, from.size(), to);
    std::ofstream(Run() / "run-summary.txt") << s;
  };
  rewrite("SceneRetryBudget=1 | PostExecution", "SceneRetryBudget=3 | PostExecution");
  EXPECT_THAT(Validate(),
              ::testing::Contains(HasSubstr("run-summary.txt says SceneRetryBudget=3")));
  rewrite(" | fallback=Forced copy after stability retries", "");
  EXPECT_THAT(Validate(), ::testing::Contains(HasSubstr("no fallback= entry")));
  rewrite("Queue policy: ", "Policy: ");
  EXPECT_THAT(Validate(), ::testing::Contains(HasSubstr("no \"Queue policy:\" line")));
  std::ofstream(Run() / "run-summary.txt") << "scenefarm run summary\nQueue policy: x\n";
  EXPECT_THAT(Validate(), ::testing::Contains(HasSubstr("has no \"[Scene s1] Telemetry: \" line")));
}

TEST_F(TelemetryTest, MissingFilesAndBrokenJsonAreViolationsNotCrashes) {
  EXPECT_THAT(Validate(), ::testing::Contains(HasSubstr("not a directory")));
  WriteScene(Good("s1"));
  EXPECT_THAT(Validate(), ::testing::Contains(HasSubstr("artifact-metadata.json: cannot be read")));
  Assemble();
  std::ofstream(Run() / "artifact-metadata.json") << "{not json";
  EXPECT_THAT(Validate(), ::testing::Contains(HasSubstr("not valid JSON")));
  Assemble();
  fs::remove(Run() / "s1" / "telemetry.json");
  EXPECT_THAT(Validate(), ::testing::Contains(HasSubstr("no s1/telemetry.json")));
}

}  // namespace
}  // namespace scenefarm::testing
