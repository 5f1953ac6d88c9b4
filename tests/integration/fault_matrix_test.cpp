// R3 fault matrix (issue #15): every fault of the ComfyUI test server crossed with pipelining
// on/off and WebSocket on/off. Each case runs one scenefarm-worker process over one test
// server: the faulted scene ("victim", leased and submitted first) and a second scene (with
// pipelining, submitted while the victim renders). Each ends succeeded or dead-lettered with the
// expected reason and telemetry; the worker never exits (it is stopped with SIGTERM and exits 0).
//
// docs/reliability.md holds the table of these expectations; FaultMatrix.DocsTableMatches
// renders it from kFaults below and fails when the doc says otherwise.
#include <sys/stat.h>

#include <sstream>

#include "support/chaos_farm.h"
#include "support/comfy_harness.h"
#include "support/queue_fixture.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct FaultCase {
  std::string name;      // the gtest parameter name
  std::string fault;     // what the test server does (the doc's words)
  std::string how;       // how the test injects it (the doc's words)
  json faults;           // POST /_test/faults before the scenes, or null
  bool restart = false;  // POST /_test/restart while the victim renders
  bool bad_workflow = false;
  std::map<std::string, std::string> flags;  // worker flags for this case
  // Expectations for the victim.
  std::string state;           // succeeded | dead
  int attempts = 1;            // its attempts at the end
  std::string reason_part;     // in its retried / dead_lettered reason ("" when none)
  std::string exit_reason;     // the final telemetry's HistoryExitReason
  std::string note_part;       // a FallbackNotes entry of its final telemetry ("" none)
  std::string telemetry_flag;  // a Telemetry boolean that must be true ("" none)
  std::string outcome;         // the doc's words
};

json PromptFault(json f) {
  f["count"] = 1;
  return {{"prompt", f}};
}

const std::vector<FaultCase>& Faults() {
  static const std::vector<FaultCase> k = {
      {"Http500",
       "HTTP 500 on `POST /prompt` (twice)",
       "`http: POST /prompt status 500 count 2`",
       {{"http", {{{"method", "POST"}, {"path", "/prompt"}, {"status", 500}, {"count", 2}}}}},
       false,
       false,
       {},
       "succeeded",
       1,
       "",
       "success",
       "",
       "",
       "succeeded, budget unspent (the submission is retried)"},
      {"Hang",
       "a node hangs",
       "`hang_ms 60000`, `--scene-max-wait-seconds 2`",
       PromptFault({{"hang_ms", 60000}}),
       false,
       false,
       {{"--scene-max-wait-seconds", "2"}},
       "succeeded",
       2,
       "maxWait",
       "success",
       "",
       "",
       "interrupted at maxWait, retried, succeeded at attempt 2"},
      {"WebSocketDrop",
       "the WebSocket drops mid-prompt",
       "`ws_drop_after_events 2`",
       PromptFault({{"ws_drop_after_events", 2}}),
       false,
       false,
       {},
       "succeeded",
       1,
       "",
       "success",
       "",
       "",
       "succeeded (WebSocket on: polled /history, then a new socket; polling only: no socket)"},
      {"OutOfMemory",
       "OOM (`torch.OutOfMemoryError`)",
       "`error: oom`",
       PromptFault({{"error", "oom"}}),
       false,
       false,
       {},
       "succeeded",
       2,
       "torch.OutOfMemoryError",
       "success",
       "",
       "",
       "ComfyUI freed (`POST /free`), retried, succeeded at attempt 2"},
      {"Rejected400",
       "400 `prompt_outputs_failed_validation`",
       "a workflow missing a required input",
       nullptr,
       false,
       true,
       {},
       "dead",
       1,
       "required_input_missing",
       "unknown",
       "",
       "",
       "dead-lettered at once with ComfyUI's node_errors, budget not spent"},
      {"SlowWrites",
       "slow writes (files visible half-written)",
       "`slow_write_ms 400`",
       PromptFault({{"slow_write_ms", 400}}),
       false,
       false,
       {},
       "succeeded",
       1,
       "",
       "success",
       "",
       "DoneMarkerDetected",
       "succeeded, whole frames (the marker comes after the files)"},
      {"PartialWrite",
       "a truncated last frame",
       "`partial_write`",
       PromptFault({{"partial_write", true}}),
       false,
       false,
       {},
       "succeeded",
       2,
       "truncated",
       "success",
       "",
       "",
       "attempt failed (truncated frame), retried, succeeded at attempt 2"},
      {"LateDoneMarker",
       "the done marker comes late",
       "`done_marker_delay_ms 600`",
       PromptFault({{"done_marker_delay_ms", 600}}),
       false,
       false,
       {},
       "succeeded",
       1,
       "",
       "success",
       "",
       "DoneMarkerDetected",
       "succeeded, the marker waited for"},
      {"MissingDoneMarker",
       "the done marker never comes",
       "`done_marker: never`, `--done-marker-wait-seconds 0.3`",
       PromptFault({{"done_marker", "never"}}),
       false,
       false,
       {{"--done-marker-wait-seconds", "0.3"}},
       "succeeded",
       1,
       "",
       "success",
       "done marker not seen within",
       "ForcedCopyTriggered",
       "succeeded by the forced copy once the files are stable"},
      {"Restart",
       "ComfyUI restarts (forgets its queue and history)",
       "`POST /_test/restart {down_ms: 300}` while the victim renders",
       nullptr,
       true,
       false,
       {},
       "succeeded",
       1,
       "",
       "success",
       "ComfyUI lost the prompt",
       "",
       "resubmitted under the same prompt_id, succeeded, budget unspent"},
  };
  return k;
}

struct MatrixParam {
  size_t fault;
  bool pipelining;
  bool websocket;
};

void PrintTo(const MatrixParam& p, std::ostream* os) {
  *os << "{" << Faults()[p.fault].name << ", pipelining " << (p.pipelining ? "on" : "off")
      << ", WebSocket " << (p.websocket ? "on" : "off") << "}";
}

std::string ParamName(const ::testing::TestParamInfo<MatrixParam>& info) {
  return Faults()[info.param.fault].name + (info.param.pipelining ? "_Pipelined" : "_Serial") +
         (info.param.websocket ? "_WebSocket" : "_Polling");
}

std::vector<MatrixParam> AllParams() {
  std::vector<MatrixParam> out;
  for (size_t f = 0; f < Faults().size(); ++f)
    for (bool p : {true, false})
      for (bool w : {true, false})
        out.push_back({f, p, w});
  return out;
}

class FaultMatrix : public ::testing::TestWithParam<MatrixParam> {
 protected:
  TempDir dir_;
};

TEST_P(FaultMatrix, EachSceneSucceedsOrIsDeadWithItsReasonAndTheWorkerLives) {
  const FaultCase& fc = Faults()[GetParam().fault];
  RedisServer redis;
  redis::Client client(redis.options());
  SystemClock clock;
  queue::Queue q(client, {}, clock);
  FarmOptions fo;
  fo.slots = 1;
  fo.pipeline_depth = GetParam().pipelining ? 1 : 0;
  fo.websocket = GetParam().websocket;
  fo.lease_seconds = 5;
  fo.heartbeat_seconds = 0.5;
  fo.retry_budget = 2;
  fo.flags = fc.flags;
  Farm farm(dir_.path(), redis.url(), fo);
  if (!fc.faults.is_null()) {
    ASSERT_EQ(farm.comfy_http(0).Post("/_test/faults", fc.faults.dump())->status, 200);
  }

  // The victim renders long enough for a restart (or a dropped socket) to land mid-prompt.
  Scene victim = MakeScene("victim", 0, 2);
  victim.workflow = SourceWorkflow("m", 2, fc.restart ? 150 : 40, 1);
  if (fc.bad_workflow) victim.workflow["1"]["inputs"].erase("frames");
  Scene next = MakeScene("next", 0, 2);
  next.workflow = SourceWorkflow("m", 2, 20, 2);
  ASSERT_TRUE(q.Enqueue({victim}).ok());
  ASSERT_TRUE(q.Enqueue({next}).ok());
  farm.Start(0, "w-matrix");

  if (fc.restart) {
    ASSERT_TRUE(WaitFor(
        [&] {
          auto r = farm.comfy_http(0).Get("/queue");
          auto j = r.ok() ? json::parse(r->body, nullptr, false) : json();
          return j.is_object() && !j["queue_running"].empty() &&
                 j["queue_running"][0][1] == "victim-a1";
        },
        30s));
    ASSERT_EQ(farm.comfy_http(0).Post("/_test/restart", R"({"down_ms":300})")->status, 200);
  }
  auto state = [&](const std::string& id) {
    auto info = q.Show(id);
    return info.ok() ? info->state : "";
  };
  auto final_state = [&](const std::string& id) {
    const std::string s = state(id);
    return s == "succeeded" || s == "dead";
  };
  ASSERT_TRUE(WaitFor([&] { return final_state("victim") && final_state("next"); }, 60s))
      << "victim " << state("victim") << ", next " << state("next") << "\n"
      << farm.Log(0).substr(0, 6000);
  ASSERT_TRUE(farm.worker(0).running()) << "the worker exited: " << farm.Log(0);

  auto info = q.Show("victim");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->state, fc.state);
  EXPECT_EQ(info->attempts, fc.attempts);
  if (!fc.reason_part.empty()) {
    std::string reasons = info->reason;
    for (const auto& e : info->history)
      if (e["event"] == "retried" || e["event"] == "dead_lettered")
        reasons += " | " + e.value("reason", "");
    EXPECT_NE(reasons.find(fc.reason_part), std::string::npos) << reasons;
  }
  if (fc.state == "dead") {
    EXPECT_FALSE(info->reason.empty());
  }
  const fs::path scene_dir = farm.artifacts() / "run1" / "victim";
  json doc = json::parse(ReadFile(scene_dir / "telemetry.json"), nullptr, false);
  ASSERT_TRUE(doc.is_object()) << "no valid telemetry.json";
  EXPECT_EQ(doc["Status"], fc.state == "dead" ? "failed" : "succeeded");
  EXPECT_EQ(doc["Attempt"], fc.attempts);
  EXPECT_EQ(doc["Telemetry"]["HistoryExitReason"], fc.exit_reason) << doc.dump();
  if (!fc.telemetry_flag.empty()) {
    EXPECT_EQ(doc["Telemetry"][fc.telemetry_flag], true);
  }
  if (!fc.note_part.empty()) {
    bool found = false;
    for (const auto& n : doc["Telemetry"]["System"]["FallbackNotes"])
      found = found || n.get<std::string>().find(fc.note_part) != std::string::npos;
    EXPECT_TRUE(found) << doc.dump();
  }
  if (fc.state == "succeeded") {
    EXPECT_EQ(doc["Telemetry"]["FrameCount"], 2);
    for (const auto& f : doc["Frames"]) {
      const std::string bytes = ReadFile(scene_dir / f.get<std::string>());
      ASSERT_GT(bytes.size(), 12u) << f;
      EXPECT_EQ(bytes.substr(bytes.size() - 8, 4), "IEND") << f << " is not a whole PNG";
    }
  }
  // The other scene is never the fault's victim: it succeeds (a hang may cost it its wait).
  EXPECT_EQ(state("next"), "succeeded") << q.Show("next")->reason;
  EXPECT_EQ(farm.Stop(0), 0) << farm.Log(0).substr(0, 3000);
}

INSTANTIATE_TEST_SUITE_P(AllFaults, FaultMatrix, ::testing::ValuesIn(AllParams()), ParamName);

// The table of docs/reliability.md, rendered from the expectations above.
std::string DocsTable() {
  std::ostringstream t;
  t << "| Fault (test server) | Injected as | Outcome (every pipelining x WebSocket case) | "
       "Attempts | Final HistoryExitReason |\n|---|---|---|---|---|\n";
  for (const auto& f : Faults()) {
    t << "| " << f.fault << " | " << f.how << " | " << f.outcome << " | " << f.attempts << " | "
      << f.exit_reason << " |\n";
  }
  return t.str();
}

TEST(FaultMatrixDoc, DocsTableMatches) {
  const std::string doc = ReadFile(fs::path(SCENEFARM_SOURCE_DIR) / "docs/reliability.md");
  EXPECT_NE(doc.find(DocsTable()), std::string::npos)
      << "docs/reliability.md should hold this table:\n"
      << DocsTable();
}

}  // namespace
}  // namespace scenefarm::testing
