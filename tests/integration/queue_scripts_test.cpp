// The queue scripts' guarantees beyond the happy path, against a real redis-server: fenced calls
// retried after a lost reply, runs finished by any transition recorded for assembly once,
// runs_completed counted once, bad arguments refused before any write, records that expire,
// long operations in batches, and the Redis server's clock instead of the caller's.
// GCC 12 at -O3 (Release) reports -Wrestrict inside libstdc++'s operator+(const char*,
// std::string&&), e.g. "b" + std::to_string(i): GCC bug 105329, a false positive (fixed in
// GCC 13). Placed before the includes: the warning's location is in <bits/char_traits.h>.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "queue_scripts.h"
#include "scenefarm/metrics.h"
#include "scenefarm/run_assembly.h"
#include "support/process.h"
#include "support/queue_fixture.h"

namespace scenefarm::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class QueueScripts : public QueueTest {
 protected:
  // The places a scene is in: each state set holding it, and its hash's state.
  std::string Places(const std::string& id) {
    std::string out;
    for (const char* set : {"pending", "delayed", "leased", "dead"}) {
      auto r = client_.Command({"ZSCORE", "sf:{scenes}:" + std::string(set), id});
      if (r.ok() && !r->is_nil()) out += std::string(set) + " ";
    }
    return out + "state=" + Field(id, "state");
  }
  // In exactly one place: its state's set, or no set once finished.
  void ExpectInOnePlace(const std::string& id, const std::string& state) {
    if (state == "succeeded" || state == "cancelled") {
      EXPECT_EQ(Places(id), "state=" + state);
    } else {
      EXPECT_EQ(Places(id), state + " state=" + state);
    }
  }
  // A script run directly, with arguments as a client of another version might send them.
  redis::Value Raw(const char* name, const char* source, std::vector<std::string> rest) {
    std::vector<std::string> args = {"sf:{scenes}:", std::to_string(clock_.NowMs())};
    args.insert(args.end(), rest.begin(), rest.end());
    auto r = client_.Eval(redis::Script{name, source}, args);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : redis::Value{};
  }
  int64_t Stat(const std::string& field) {
    return client_.Command({"HGET", "sf:{scenes}:stats", field})->AsInt();
  }
  int64_t Ttl(const std::string& key) { return client_.Command({"TTL", key})->AsInt(); }
  // Every key of the server with its TTL and value: hash fields and set members sorted, sorted
  // sets with their scores, stream entries without their ids (they hold the wall clock).
  std::string Dump() {
    auto keys = client_.Command({"KEYS", "*"});
    EXPECT_TRUE(keys.ok());
    std::vector<std::string> names;
    for (const auto& k : keys->elements)
      names.push_back(k.str);
    std::sort(names.begin(), names.end());
    std::string out;
    for (const auto& k : names) {
      const std::string type = client_.Command({"TYPE", k})->str;
      out += k + " " + type + " ttl=" + std::to_string(Ttl(k)) + ":";
      std::vector<std::string> parts;
      if (type == "string") {
        parts.push_back(client_.Command({"GET", k})->AsString());
      } else if (type == "hash") {
        auto h = client_.Command({"HGETALL", k});
        for (size_t i = 0; i + 1 < h->elements.size(); i += 2)
          parts.push_back(h->elements[i].str + "=" + h->elements[i + 1].str);
        std::sort(parts.begin(), parts.end());
      } else if (type == "set") {
        auto members = client_.Command({"SMEMBERS", k});
        for (const auto& m : members->elements)
          parts.push_back(m.str);
        std::sort(parts.begin(), parts.end());
      } else if (type == "zset") {
        auto z = client_.Command({"ZRANGE", k, "0", "-1", "WITHSCORES"});
        for (size_t i = 0; i + 1 < z->elements.size(); i += 2)
          parts.push_back(z->elements[i].str + "@" + z->elements[i + 1].str);
      } else if (type == "stream") {
        auto entries = client_.Command({"XRANGE", k, "-", "+"});
        for (const auto& e : entries->elements) {
          std::string entry;
          for (const auto& f : e.elements.at(1).elements)
            entry += f.AsString() + ",";
          parts.push_back(entry);
        }
      } else {
        parts.push_back("unexpected type");
      }
      for (const auto& p : parts)
        out += " " + p;
      out += "\n";
    }
    return out;
  }
  // How many EVALSHA calls the server has run so far.
  int64_t EvalCalls() {
    auto info = client_.Command({"INFO", "commandstats"});
    std::smatch m;
    const std::string text = info.ok() ? info->str : "";
    if (std::regex_search(text, m, std::regex("cmdstat_evalsha:calls=(\\d+)")))
      return std::stoll(m[1]);
    return 0;
  }
};

TEST_F(QueueScripts, AckRetriedAfterALostReplyGetsTheFirstAnswerWithTheRunsCompletion) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  auto s = MustLease("w1");
  bool done = false;
  ASSERT_TRUE(queue_.Ack(s, "w1", {{"frames", 1}}, &done).ok());
  EXPECT_TRUE(done);
  // The reply was lost (a timeout): the worker retries the same ack.
  bool again = false;
  Status retry = queue_.Ack(s, "w1", {{"frames", 1}}, &again);
  EXPECT_TRUE(retry.ok()) << retry.ToString();
  EXPECT_TRUE(again) << "the retry must still say that this ack finished the run";
  EXPECT_EQ(Stat("succeeded"), 1);  // recorded once
  EXPECT_EQ(Events("a"), (std::vector<std::string>{"enqueued", "leased", "succeeded"}));
  // Anyone else, or another attempt, is still fenced off.
  EXPECT_EQ(queue_.Ack(s, "w2", {}).code(), StatusCode::kAborted);
  auto other = s;
  other.attempt = 7;
  EXPECT_EQ(queue_.Ack(other, "w1", {}).code(), StatusCode::kAborted);
}

TEST_F(QueueScripts, FailAndReleaseRetriedAfterALostReplyGetTheFirstAnswer) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b")}).ok());
  auto a = MustLease("w1");
  auto b = MustLease("w1");
  bool done = true;
  auto first = queue_.Fail(a, "w1", "boom", /*permanent=*/true, 0ms, "", &done);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, "dead");
  EXPECT_FALSE(done);
  auto retry = queue_.Fail(a, "w1", "boom", true, 0ms, "", &done);
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(*retry, "dead");
  ASSERT_TRUE(queue_.Release(b, "w1", "draining").ok());
  EXPECT_TRUE(queue_.Release(b, "w1", "draining").ok());
  EXPECT_EQ(Stat("dead_lettered"), 1);
  EXPECT_EQ(Stat("released"), 1);
  ExpectInOnePlace("a", "dead");
  ExpectInOnePlace("b", "pending");
  // The last scene fails: its retried call reports the run's completion too.
  auto b2 = MustLease("w1");
  ASSERT_TRUE(queue_.Fail(b2, "w1", "boom", true, 0ms, "", &done).ok());
  EXPECT_TRUE(done);
  done = false;
  ASSERT_TRUE(queue_.Fail(b2, "w1", "boom", true, 0ms, "", &done).ok());
  EXPECT_TRUE(done);
}

TEST_F(QueueScripts, RunsFinishedByReclaimOrCancelAreLeftForAssemblyAndClaimedOnce) {
  queue::QueueOptions o;
  o.max_reclaims = 1;
  queue::Queue q(client_, o, clock_);
  auto lost = MakeScene("lost");
  lost.run = "by-reclaim";
  auto waiting = MakeScene("waiting");
  waiting.run = "by-cancel";
  ASSERT_TRUE(q.Enqueue({lost, waiting}).ok());
  ASSERT_TRUE(q.Lease("w1", 10s).ok());  // "lost": its worker dies
  clock_.AdvanceMs(11000);
  ASSERT_EQ(*q.Reclaim(), 1);  // dead-lettered: lease expired max_reclaims times
  EXPECT_EQ(q.Show("lost")->state, "dead");
  ASSERT_EQ(*q.Cancel("waiting"), "pending");
  EXPECT_EQ(*q.FinishedRuns(), (std::vector<std::string>{"by-cancel", "by-reclaim"}));
  EXPECT_TRUE(*q.ClaimFinishedRun("by-reclaim"));
  EXPECT_FALSE(*q.ClaimFinishedRun("by-reclaim"));  // exactly one claimant
  EXPECT_EQ(*q.FinishedRuns(), (std::vector<std::string>{"by-cancel"}));
  // The next worker to finish a scene, of any run, is told that a run waits for it.
  auto x = MakeScene("x"), y = MakeScene("y");
  x.run = y.run = "open";
  ASSERT_TRUE(q.Enqueue({x, y}).ok());
  auto lx = q.Lease("w2", 30s);
  ASSERT_TRUE(lx.ok() && lx->has_value());
  bool awaits = false;
  ASSERT_TRUE(q.Ack(**lx, "w2", {}, &awaits).ok());
  EXPECT_TRUE(awaits) << "by-cancel waits to be assembled";
  EXPECT_TRUE(*q.ClaimFinishedRun("by-cancel"));
  auto ly = q.Fail(**q.Lease("w2", 30s), "w2", "boom", false, 1000ms, "", &awaits);
  ASSERT_TRUE(ly.ok());
  EXPECT_EQ(*ly, "delayed");
  EXPECT_FALSE(awaits) << "nothing waits: no round trip to look";
}

TEST_F(QueueScripts, ARunWhoseClaimantDiedIsAssembledByRepairOnceTheClaimExpires) {
  namespace fs = std::filesystem;
  TempDir artifacts;
  auto only = MakeScene("only");
  only.run = "orphan";
  ASSERT_TRUE(queue_.Enqueue({only}).ok());
  auto l = queue_.Lease("w1", 30s);
  ASSERT_TRUE(l.ok() && l->has_value());
  bool finished = false;
  ASSERT_TRUE(queue_.Ack(**l, "w1", {}, &finished).ok());
  ASSERT_TRUE(finished);
  telemetry::SceneTelemetry t;
  t.scene_id = "only";
  t.run = "orphan";
  t.status = "succeeded";
  fs::create_directories(artifacts.path() / "orphan" / "only");
  std::ofstream(artifacts.path() / "orphan" / "only" / "telemetry.json") << t.ToJson().dump();
  // A worker claims the run and dies before it writes anything.
  auto claim = queue_.ClaimFinishedRun("orphan");
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  ASSERT_GT(*claim, 0);
  // scenefarm repair (the same call): the claim still holds, so nothing is assembled yet.
  auto runs = telemetry::AssembleFinishedRuns(queue_, client_, artifacts.path(), nullptr);
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  EXPECT_TRUE(runs->empty());
  EXPECT_FALSE(fs::exists(artifacts.path() / "orphan" / "run-summary.txt"));
  // The claim expires: the next repair takes it over and assembles the run.
  clock_.AdvanceMs(queue::QueueOptions{}.run_claim_seconds * 1000 + 1);
  EXPECT_EQ(*queue_.FinishedRuns(), (std::vector<std::string>{"orphan"}));
  runs = telemetry::AssembleFinishedRuns(queue_, client_, artifacts.path(), nullptr);
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].run, "orphan");
  EXPECT_TRUE((*runs)[0].assembled) << (*runs)[0].error;
  EXPECT_TRUE(fs::exists(artifacts.path() / "orphan" / "run-summary.txt"));
  // Assembled: the claim is gone for good, and the dead claimant's late end changes nothing.
  EXPECT_FALSE(*queue_.RunAssembled("orphan", *claim));
  clock_.AdvanceMs(queue::QueueOptions{}.run_claim_seconds * 1000 + 1);
  EXPECT_TRUE(queue_.FinishedRuns()->empty());
  EXPECT_EQ(*queue_.ClaimFinishedRun("orphan"), 0);
}

TEST_F(QueueScripts, AScenePastTheOutageReleaseCapIsDeadLetteredAndRetryResetsTheCount) {
  queue::QueueOptions o;
  o.max_outage_releases = 3;
  queue::Queue q(client_, o, clock_);
  auto only = MakeScene("bouncer");
  only.run = "bouncing";
  ASSERT_TRUE(q.Enqueue({only}).ok());
  auto lease = [&] {
    auto l = q.Lease("w1", 30s);
    EXPECT_TRUE(l.ok() && l->has_value());
    return l.ok() && l->has_value() ? **l : queue::LeasedScene{};
  };
  // A shutdown's release is no outage: it does not count.
  ASSERT_TRUE(q.Release(lease(), "w1", "worker draining").ok());
  for (int i = 1; i <= 2; ++i) {
    auto r = q.ReleaseInOutage(lease(), "w1", "renderer unreachable: hung");
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(*r, "pending");
    EXPECT_EQ(Field("bouncer", "outage_releases"), std::to_string(i));
  }
  const auto third = lease();
  bool run_complete = false;
  auto r = q.ReleaseInOutage(third, "w1", "renderer unreachable: hung", &run_complete);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "dead");
  EXPECT_TRUE(run_complete);  // its run's only scene: the run waits to be assembled
  EXPECT_EQ(Places("bouncer"), "dead state=dead");
  EXPECT_NE(Field("bouncer", "reason").find("comfyui outage: released 3 times"), std::string::npos)
      << Field("bouncer", "reason");
  EXPECT_EQ(Field("bouncer", "failures"), "0");  // its retry budget was never spent
  // A retry after a lost reply gets the same answer.
  EXPECT_EQ(*q.ReleaseInOutage(third, "w1", "renderer unreachable: hung"), "dead");
  ASSERT_TRUE(q.Retry("bouncer").ok());
  EXPECT_EQ(Field("bouncer", "outage_releases"), "0");
  EXPECT_EQ(*q.ReleaseInOutage(lease(), "w1", "renderer unreachable: hung"), "pending");
}

TEST_F(QueueScripts, RunsCompletedCountsEachRunOnce) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  ASSERT_TRUE(queue_.Fail(MustLease("w1"), "w1", "boom", true, 0ms).ok());
  EXPECT_EQ(Stat("runs_completed"), 1);
  ASSERT_EQ(*queue_.Cancel("a"), "dead");  // the run was already finished
  EXPECT_EQ(Stat("runs_completed"), 1);
  EXPECT_TRUE(queue_.GetStatus(30s)->runs_in_progress.empty());

  auto b = MakeScene("b");
  b.run = "run2";
  ASSERT_TRUE(queue_.Enqueue({b}).ok());
  ASSERT_TRUE(queue_.Fail(MustLease("w1"), "w1", "boom", true, 0ms).ok());
  EXPECT_EQ(Stat("runs_completed"), 2);
  ASSERT_TRUE(queue_.Retry("b").ok());  // the run is open again...
  EXPECT_EQ(queue_.GetStatus(30s)->runs_in_progress, std::vector<std::string>{"run2"});
  bool done = false;
  ASSERT_TRUE(queue_.Ack(MustLease("w1"), "w1", {}, &done).ok());
  EXPECT_TRUE(done);                     // ...finishes again (and is assembled again)...
  EXPECT_EQ(Stat("runs_completed"), 2);  // ...but completed once
}

// Issue #14 P6: many scenes per script call (enqueue_many.lua) leave Redis exactly as one
// enqueue.lua call per scene did: keys, fields, scores, counters, runs, events in order, with
// duplicates (of an existing scene and within the list) refused alike.
TEST_F(QueueScripts, BatchedEnqueueLeavesRedisAsOneCallPerSceneDid) {
  std::vector<Scene> scenes;
  for (int i = 0; i < 40; ++i) {
    Scene s = MakeScene("s" + std::to_string(i), i % 5 - 2,
                        i % 4 == 0 ? std::optional<int>(3) : std::nullopt);
    s.run = i % 3 == 0 ? "run2" : "run1";
    if (i % 7 == 0) s.metadata = {{"shot", i}};
    scenes.push_back(s);
  }
  scenes.push_back(MakeScene("s3"));   // a duplicate within the list
  scenes.push_back(MakeScene("s39"));  // a duplicate across calls
  auto one_scene = [&](const Scene& s) {
    return Raw("enqueue", queue::scripts::k_enqueue,
               {s.id, s.run, std::to_string(s.priority), std::to_string(s.retry_budget.value_or(1)),
                SceneToJson(s).dump()});
  };
  ASSERT_EQ(one_scene(MakeScene("s5")).integer, 1);  // exists before
  std::vector<bool> by_one;
  for (const auto& s : scenes)
    by_one.push_back(one_scene(s).integer == 1);
  const std::string state_by_one = Dump();
  ASSERT_TRUE(client_.Command({"FLUSHALL"}).ok());

  ASSERT_EQ(one_scene(MakeScene("s5")).integer, 1);
  queue::QueueOptions options;
  options.enqueue_batch = 7;  // calls cut through the duplicates and the runs
  options.enqueue_calls_per_round_trip = 3;
  queue::Queue batched(client_, options, clock_);
  const int64_t calls_before = EvalCalls();
  auto created = batched.Enqueue(scenes);
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  EXPECT_EQ(*created, by_one);
  EXPECT_EQ(std::count(by_one.begin(), by_one.end(), false), 3);
  EXPECT_EQ(EvalCalls() - calls_before, 6) << "42 scenes, 7 per call";
  EXPECT_EQ(Dump(), state_by_one);
  EXPECT_NE(state_by_one.find("sf:{scenes}:pending zset"), std::string::npos) << state_by_one;
}

// A bad scene refuses its whole call before any write; the calls before it stay enqueued and
// the error says so (the CLI validates every scene first, so it never sends one).
TEST_F(QueueScripts, ABadSceneInABatchEnqueuesNothingOfItsCall) {
  EXPECT_TRUE(Raw("enqueue_many", queue::scripts::k_enqueue_many,
                  {"a", "run1", "0", "1", "{}", "b", "run1", "high", "1", "{}", "c", "run1", "0",
                   "1", "{}"})
                  .is_error());
  EXPECT_TRUE(
      Raw("enqueue_many", queue::scripts::k_enqueue_many, {"a", "run1", "0", "1"}).is_error());
  EXPECT_EQ(client_.Command({"DBSIZE"})->AsInt(), 0) << Dump();

  queue::QueueOptions options;
  options.enqueue_batch = 2;
  queue::Queue batched(client_, options, clock_);
  std::vector<queue::EnqueueDoc> docs;
  for (const char* id : {"a", "b", "c", "d"})
    docs.push_back(queue::ToEnqueueDoc(MakeScene(id)));
  docs[2].priority = 5000;
  auto r = batched.EnqueueDocs(docs);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("priority"), std::string::npos) << r.status().ToString();
  EXPECT_EQ(Places("a"), "pending state=pending");
  EXPECT_EQ(Places("b"), "pending state=pending");
  EXPECT_EQ(Places("c"), "state=");
  EXPECT_EQ(Places("d"), "state=");
  EXPECT_EQ(Stat("enqueued"), 2);
}

TEST_F(QueueScripts, BadArgumentsAreRefusedBeforeAnyWrite) {
  using namespace queue::scripts;
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b")}).ok());
  // enqueue: a priority that is not a number creates nothing.
  EXPECT_TRUE(Raw("enqueue", k_enqueue, {"c", "run1", "high", "1", "{}"}).is_error());
  EXPECT_EQ(client_.Command({"EXISTS", "sf:{scenes}:scene:c"})->integer, 0);
  // lease: a lease length that is not a number leaves "a" pending.
  EXPECT_TRUE(Raw("lease", k_lease, {"w1", "soon"}).is_error());
  ExpectInOnePlace("a", "pending");
  auto a = MustLease("w1");
  const std::string attempt = std::to_string(a.attempt);
  // ack: a retention that is not a number; a missing result.
  EXPECT_TRUE(Raw("ack", k_ack, {"w1", "a", attempt, "{}", "forever"}).is_error());
  EXPECT_TRUE(Raw("ack", k_ack, {"w1", "a", attempt}).is_error());
  ExpectInOnePlace("a", "leased");
  // fail: bad permanent flag, bad backoff, bad outcome, and a record without its budget.
  EXPECT_TRUE(
      Raw("fail", k_fail, {"w1", "a", attempt, "x", "2", "0", "failed", "", ""}).is_error());
  EXPECT_TRUE(
      Raw("fail", k_fail, {"w1", "a", attempt, "x", "0", "later", "failed", "", ""}).is_error());
  EXPECT_TRUE(Raw("fail", k_fail, {"w1", "a", attempt, "x", "0", "0", "oops", "", ""}).is_error());
  ASSERT_EQ(client_.Command({"HDEL", "sf:{scenes}:scene:a", "retry_budget"})->integer, 1);
  auto no_budget = queue_.Fail(a, "w1", "boom", false, 0ms);
  EXPECT_EQ(no_budget.status().code(), StatusCode::kInternal);
  EXPECT_NE(no_budget.status().message().find("no retry_budget"), std::string::npos)
      << no_budget.status().ToString();
  ExpectInOnePlace("a", "leased");
  ASSERT_TRUE(client_.Command({"HSET", "sf:{scenes}:scene:a", "retry_budget", "1"}).ok());
  // ack, fail: a record that lost its run (a damaged hash) is refused before the lease moves.
  ASSERT_EQ(client_.Command({"HDEL", "sf:{scenes}:scene:a", "run"})->integer, 1);
  EXPECT_TRUE(Raw("ack", k_ack, {"w1", "a", attempt, "{}", "60"}).is_error());
  EXPECT_TRUE(
      Raw("fail", k_fail, {"w1", "a", attempt, "x", "0", "0", "failed", "", ""}).is_error());
  ExpectInOnePlace("a", "leased");
  ASSERT_TRUE(client_.Command({"HSET", "sf:{scenes}:scene:a", "run", "run1"}).ok());
  // release, heartbeat, resume: bad attempt or lease length.
  EXPECT_TRUE(Raw("release", k_release, {"w1", "a", "first", "x"}).is_error());
  EXPECT_TRUE(Raw("heartbeat", k_heartbeat, {"w1", "long", "a", attempt}).is_error());
  EXPECT_TRUE(Raw("resume", k_resume, {"w1", "long"}).is_error());
  EXPECT_EQ(Field("a", "attempts"), attempt);
  ExpectInOnePlace("a", "leased");
  // reclaim: a bad max_reclaims with an expired lease leaves it leased.
  clock_.AdvanceMs(31000);
  EXPECT_TRUE(Raw("reclaim", k_reclaim, {"100", "many"}).is_error());
  ExpectInOnePlace("a", "leased");
  // cancel, retry, purge: bad retention, empty id, bad limit.
  EXPECT_TRUE(Raw("cancel", k_cancel, {"b", "forever"}).is_error());
  EXPECT_TRUE(Raw("retry", k_retry, {""}).is_error());
  EXPECT_TRUE(Raw("purge", k_purge, {"0", "all"}).is_error());
  // pause: neither 1 nor 0 pauses nothing.
  EXPECT_TRUE(Raw("pause", queue::scripts::k_pause, {"yes", "t"}).is_error());
  EXPECT_EQ(client_.Command({"EXISTS", "sf:{scenes}:paused"})->integer, 0);
  ExpectInOnePlace("b", "pending");
  // A key prefix that is not a queue's touches nothing.
  auto wrong = client_.Eval(redis::Script{"cancel", k_cancel},
                            {"sf:scenes:", std::to_string(clock_.NowMs()), "b"});
  ASSERT_TRUE(wrong.ok());
  EXPECT_TRUE(wrong->is_error());
  ExpectInOnePlace("b", "pending");
}

// Issue #14 P3: ack_lease.lua leaves Redis exactly as ack.lua then lease.lua did (counters,
// histograms, events, the run, the wake token), but for the two things it adds: the worker's
// busy mark and the acked scene's then_leased (its retry's answer).
TEST_F(QueueScripts, AckLeaseLeavesRedisAsAckThenLeaseDid) {
  const json result = {{"telemetry",
                        {{"DurationSeconds", 3.5},
                         {"HistoryExitReason", "success"},
                         {"FrameCount", 24},
                         {"DoneMarkerDetected", true},
                         {"DoneMarkerWaitSeconds", 0.2}}},
                       {"fallback_reasons", {"late_marker"}},
                       {"expected_frames", 30}};
  auto setup = [&] {
    Scene other = MakeScene("c");
    other.run = "run2";
    EXPECT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b"), other}).ok());
    auto a = MustLease("w1");
    clock_.AdvanceMs(1500);
    return a;
  };
  auto state = [&] {
    EXPECT_EQ(client_.Command({"HEXISTS", "sf:{scenes}:scene:a", "then_leased"})->integer,
              client_.Command({"EXISTS", "sf:worker:w1"})->integer);
    EXPECT_TRUE(client_.Command({"HDEL", "sf:{scenes}:scene:a", "then_leased"}).ok());
    EXPECT_TRUE(client_.Command({"DEL", "sf:worker:w1"}).ok());
    return Dump();
  };
  const int64_t start = clock_.NowMs();
  auto a = setup();
  ASSERT_TRUE(queue_.Ack(a, "w1", result).ok());
  EXPECT_EQ(MustLease("w1").id, "b");
  const std::string by_two = state();
  ASSERT_TRUE(client_.Command({"FLUSHALL"}).ok());
  clock_.AdvanceMs(start - clock_.NowMs());  // the same times again
  a = setup();
  auto r = queue_.AckAndLease(a, "w1", result, 30s, "", {"scenes"});
  ASSERT_TRUE(r.ok() && r->next.has_value()) << r.status().ToString();
  EXPECT_EQ(r->next->id, "b");
  EXPECT_EQ(state(), by_two);
  EXPECT_NE(by_two.find("sf:{scenes}:h:frames hash"), std::string::npos) << by_two;
}

TEST_F(QueueScripts, AckLeaseRefusesBadArgumentsBeforeAnyWrite) {
  using namespace queue::scripts;
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b")}).ok());
  auto a = MustLease("w1");
  const std::string attempt = std::to_string(a.attempt);
  EXPECT_TRUE(Raw("ack_lease", k_ack_lease, {"w1", "a", attempt, "{}", "60", "soon", "", "scenes"})
                  .is_error());
  EXPECT_TRUE(Raw("ack_lease", k_ack_lease, {"w1", "a", attempt, "{}", "60", "1000", "", "sf:{x}"})
                  .is_error());
  EXPECT_TRUE(Raw("ack_lease", k_ack_lease, {"w1", "a", "first", "{}", "60", "1000", "", "scenes"})
                  .is_error());
  ExpectInOnePlace("a", "leased");
  ExpectInOnePlace("b", "pending");
  EXPECT_EQ(client_.Command({"EXISTS", "sf:worker:w1"})->integer, 0);
}

TEST_F(QueueScripts, AckWithOddTelemetryRecordsTheSceneInOnePlace) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  auto a = MustLease("w1");
  // A FrameCount HINCRBY cannot add, a duration whose sum HINCRBYFLOAT would refuse, and a
  // negative wait.
  json result = {{"telemetry",
                  {{"FrameCount", 2.5},
                   {"DurationSeconds", 1e308},
                   {"DoneMarkerDetected", true},
                   {"DoneMarkerWaitSeconds", -1}}}};
  Status s = queue_.Ack(a, "w1", result);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectInOnePlace("a", "succeeded");
  EXPECT_EQ(Stat("succeeded"), 1);
  EXPECT_EQ(Stat("frames"), 0);  // not a frame count: not counted
  // Observed at lease-to-ack instead; the sum stays a number.
  EXPECT_EQ(client_.Command({"HGET", "sf:{scenes}:h:duration", "count"})->AsInt(), 1);
  EXPECT_LT(std::stod(client_.Command({"HGET", "sf:{scenes}:h:duration", "sum"})->AsString()), 1e6);
  EXPECT_TRUE(client_.Command({"HGET", "sf:{scenes}:h:done_marker_wait", "count"})->is_nil());
}

TEST_F(QueueScripts, CancelledScenesFinishedRunsAndGoneWorkersAreNotKeptForever) {
  queue::QueueOptions o;
  o.retention_seconds = 3600;
  queue::Queue q(client_, o, clock_);
  auto other = MakeScene("other");
  other.run = "run2";
  ASSERT_TRUE(q.Enqueue({MakeScene("a"), MakeScene("b"), MakeScene("c"), other}).ok());
  ASSERT_EQ(*q.Cancel("a"), "pending");
  auto b = q.Lease("w1", 30s);
  ASSERT_TRUE(b.ok() && b->has_value());
  ASSERT_EQ(*q.Cancel("b"), "leased");
  ASSERT_TRUE(q.AckCancelled(**b, "w1").ok());
  auto c = q.Lease("w1", 30s);
  ASSERT_TRUE(c.ok() && c->has_value());
  ASSERT_EQ(*q.Cancel("c"), "leased");  // its worker dies: reclaim cancels it
  clock_.AdvanceMs(31000);
  ASSERT_EQ(*q.Reclaim(), 1);
  for (const char* id : {"a", "b", "c"}) {
    const int64_t ttl = Ttl("sf:{scenes}:scene:" + std::string(id));
    EXPECT_GT(ttl, 0) << id;
    EXPECT_LE(ttl, 3600) << id;
  }
  // The finished run's record expires; the open one's does not.
  EXPECT_GT(Ttl("sf:{scenes}:run:run1"), 0);
  EXPECT_EQ(Ttl("sf:{scenes}:run:run2"), -1);
  // A worker silent longer than the retention leaves sf:workers at the next reclaim.
  ASSERT_TRUE(q.Heartbeat("old", 30s, {}).ok());
  clock_.AdvanceMs(3601 * 1000);
  ASSERT_TRUE(q.Heartbeat("new", 30s, {}).ok());
  ASSERT_TRUE(q.Reclaim().ok());
  EXPECT_TRUE(client_.Command({"ZSCORE", "sf:workers", "old"})->is_nil());
  EXPECT_FALSE(client_.Command({"ZSCORE", "sf:workers", "new"})->is_nil());
}

TEST_F(QueueScripts, ARunReopenedAfterItsRecordExpiredCountsOnlyWhatCameBack) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b")}).ok());
  ASSERT_TRUE(queue_.Fail(MustLease("w1"), "w1", "boom", true, 0ms).ok());
  ASSERT_TRUE(queue_.Ack(MustLease("w1"), "w1", {}).ok());
  ASSERT_EQ(client_.Command({"DEL", "sf:{scenes}:run:run1"})->integer, 1);  // retention passed
  ASSERT_TRUE(queue_.Retry("a").ok());
  EXPECT_EQ(client_.Command({"HGET", "sf:{scenes}:run:run1", "total"})->AsInt(), 1);
  EXPECT_EQ(queue_.GetStatus(30s)->runs_in_progress, std::vector<std::string>{"run1"});
  bool done = false;
  ASSERT_TRUE(queue_.Ack(MustLease("w1"), "w1", {}, &done).ok());
  EXPECT_TRUE(done);
}

TEST_F(QueueScripts, LongOperationsRunAFewHundredScenesPerScriptCall) {
  constexpr int kScenes = 450;  // script_batch is 200: three calls each
  std::vector<std::vector<std::string>> cmds;
  for (int i = 0; i < kScenes; ++i) {
    const std::string id = "d" + std::to_string(i);
    cmds.push_back(
        {"HSET", "sf:{scenes}:scene:" + id, "state", "dead", "run", "r", "attempts", "1"});
    cmds.push_back({"ZADD", "sf:{scenes}:dead", std::to_string(clock_.NowMs() - 1000), id});
  }
  ASSERT_TRUE(client_.Pipeline(cmds).ok());
  ASSERT_TRUE(queue_.PurgeDead(0, 1).ok());  // loads the script: not counted below
  auto listed = queue_.DeadBefore(clock_.NowMs(), 1000000);
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), static_cast<size_t>(kScenes));
  const int64_t before = EvalCalls();
  auto purged = queue_.PurgeDead(clock_.NowMs(), 1000000);
  ASSERT_TRUE(purged.ok()) << purged.status().ToString();
  EXPECT_EQ(purged->size(), static_cast<size_t>(kScenes));
  EXPECT_EQ(EvalCalls() - before, 3);
  EXPECT_EQ(client_.Command({"ZCARD", "sf:{scenes}:dead"})->integer, 0);

  // Leases of a gone worker: expired and reclaimed in batches too.
  std::vector<Scene> scenes;
  for (int i = 0; i < kScenes; ++i)
    scenes.push_back(MakeScene("s" + std::to_string(i)));
  ASSERT_TRUE(queue_.Enqueue(scenes).ok());
  for (int i = 0; i < kScenes; ++i)
    ASSERT_TRUE(queue_.Lease("gone", 1h).ok());
  auto gone = queue_.LeasesOfGoneWorkers(30s);
  ASSERT_TRUE(gone.ok());
  ASSERT_EQ(gone->size(), static_cast<size_t>(kScenes));
  const int64_t before_expire = EvalCalls();
  EXPECT_EQ(*queue_.ExpireLeases(*gone), kScenes);
  EXPECT_EQ(EvalCalls() - before_expire, 3);
  const int64_t before_reclaim = EvalCalls();
  EXPECT_EQ(*queue_.Reclaim(100000), kScenes);
  EXPECT_EQ(EvalCalls() - before_reclaim, 3);
  EXPECT_EQ(queue_.GetStatus(30s)->depth.pending, kScenes);
}

// A host clock an hour ahead of the Redis server's, queue scripts on Redis TIME (the CLI's case).
class AheadClock : public Clock {
 public:
  int64_t NowMs() const override { return system_.NowMs() + 3600 * 1000; }

 private:
  SystemClock system_;
};

TEST_F(QueueScripts, AClientClockAheadOfRedisNeitherExpiresLiveLeasesNorLosesLiveWorkers) {
  AheadClock ahead;
  queue::Queue q(client_, queue::QueueOptions{}, ahead);
  ASSERT_TRUE(q.Enqueue({MakeScene("a")}).ok());
  auto a = q.Lease("w1", 30s);
  ASSERT_TRUE(a.ok() && a->has_value());
  ASSERT_TRUE(q.Heartbeat("w1", 30s, {**a}).ok());
  auto gone = q.LeasesOfGoneWorkers(30s);
  ASSERT_TRUE(gone.ok());
  EXPECT_TRUE(gone->empty()) << "w1 heartbeats: its lease is not a gone worker's";
  auto expired = q.ExpiredLeases();
  ASSERT_TRUE(expired.ok());
  EXPECT_TRUE(expired->empty());
  auto st = q.GetStatus(30s);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->workers_live, 1);
  EXPECT_LT(st->oldest_pending_age_seconds, 600);
  auto now = q.TimeMs();
  ASSERT_TRUE(now.ok());
  EXPECT_LT(*now, ahead.NowMs() - 1800 * 1000);  // the server's time, not the host's
}

// lib.lua's histogram bounds and metrics.h's are the same lists (the exporter reads the
// buckets the scripts write).
std::vector<double> LuaBuckets(const std::string& lib, const std::string& name) {
  std::smatch m;
  EXPECT_TRUE(std::regex_search(lib, m, std::regex("local " + name + " = \\{([^}]*)\\}"))) << name;
  std::vector<double> out;
  const std::string list = m[1];
  std::regex quoted("'([^']*)'");
  for (auto it = std::sregex_iterator(list.begin(), list.end(), quoted);
       it != std::sregex_iterator(); ++it)
    out.push_back(std::stod((*it)[1]));
  return out;
}

TEST(QueueBuckets, LibLuaAndMetricsHaveTheSameHistogramBounds) {
  std::ifstream in(std::string(SCENEFARM_SOURCE_DIR) + "/common/queue/lua/lib.lua");
  ASSERT_TRUE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string lib = ss.str();
  EXPECT_EQ(LuaBuckets(lib, "DURATION_BUCKETS"), metrics::kDurationBuckets);
  EXPECT_EQ(LuaBuckets(lib, "WAIT_BUCKETS"), metrics::kWaitBuckets);
  EXPECT_EQ(LuaBuckets(lib, "FRAME_BUCKETS"), metrics::kFrameBuckets);
}

// The scripts as Redis runs them (cmake/embed_lua.cmake): lib.lua and the script line for line,
// with lib.lua's definitions a script does not use left out as empty lines, and nothing left
// out that the script's text still names.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);)
    out.push_back(line);
  return out;
}

std::string SourceFile(const std::string& name) {
  std::ifstream in(std::string(SCENEFARM_SOURCE_DIR) + "/common/queue/lua/" + name);
  EXPECT_TRUE(in.good()) << name;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(QueueScriptText, EachScriptCarriesWhatItUsesOfLibLuaLineForLine) {
  const std::string lib = SourceFile("lib.lua");
  const std::regex definition(
      "^local (?:function )?([A-Za-z_][A-Za-z0-9_]*(?:, *[A-Za-z_][A-Za-z0-9_]*)*)");
  size_t scripts = 0, left_out_somewhere = 0;
  for (const auto& script : queue::scripts::k_all) {
    SCOPED_TRACE(script.name);
    ++scripts;
    const auto source = Lines(lib + "\n" + SourceFile(std::string(script.name) + ".lua"));
    const std::string text = script.text;
    const auto embedded = Lines(text);
    ASSERT_EQ(embedded.size(), source.size());
    size_t left_out = 0;
    for (size_t i = 0; i < source.size(); ++i) {
      if (embedded[i] == source[i]) continue;
      ASSERT_EQ(embedded[i], "") << "line " << i + 1
                                 << " is neither lib.lua's/the script's nor empty";
      std::smatch m;
      if (!std::regex_search(source[i], m, definition)) {
        // Part of a left-out definition: its comment, its indented body or its closing line.
        EXPECT_TRUE(source[i].empty() || source[i][0] == ' ' || source[i].rfind("--", 0) == 0 ||
                    std::regex_search(source[i], std::regex("^(end\\b|[})])")))
            << "line " << i + 1 << " was left out but begins a statement: " << source[i];
        continue;
      }
      ++left_out;
      std::stringstream names(m[1].str());
      for (std::string name; std::getline(names, name, ',');) {
        name.erase(0, name.find_first_not_of(' '));
        EXPECT_FALSE(std::regex_search(text, std::regex("\\b" + name + "\\b")))
            << "line " << i + 1 << " defines " << name
            << ", which the script names, and was left out";
      }
    }
    if (left_out > 0) ++left_out_somewhere;
  }
  size_t files = 0;  // every script in the source directory but lib.lua is embedded
  for (const auto& f :
       std::filesystem::directory_iterator(std::string(SCENEFARM_SOURCE_DIR) + "/common/queue/lua"))
    if (f.path().extension() == ".lua" && f.path().filename() != "lib.lua") ++files;
  EXPECT_EQ(scripts, files);
  EXPECT_GE(left_out_somewhere, scripts / 2);  // most scripts use a small part of lib.lua
  // Each compiles in Redis as embedded.
  RedisServer redis;
  redis::Client client(redis.options());
  for (const auto& script : queue::scripts::k_all) {
    auto loaded = client.Command({"SCRIPT", "LOAD", script.text});
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    EXPECT_FALSE(loaded->is_error()) << script.name << ": " << loaded->str;
  }
  // heartbeat.lua (every worker, every 5 s) carries none of the ack's or the lease's code.
  for (const auto& script : queue::scripts::k_all) {
    if (std::string(script.name) != "heartbeat") continue;
    EXPECT_EQ(std::string(script.text).find("local function ack_scene"), std::string::npos);
    EXPECT_EQ(std::string(script.text).find("local function lease_first"), std::string::npos);
    EXPECT_NE(std::string(script.text).find("local function owned"), std::string::npos);
  }
}

}  // namespace
}  // namespace scenefarm::testing
