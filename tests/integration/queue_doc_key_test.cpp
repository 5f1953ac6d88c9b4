// Issue #14 P6: a scene's document lives in its own key (sf:{Q}:doc:<id>) beside its hash, so
// that the hash stays a listpack; the two live and die together; and scenes written by an
// earlier version (the document in the hash's `doc` field, no doc key) are still leased, shown,
// acked, expired and purged. Against a real redis-server.
#include <set>

#include "queue_scripts.h"
#include "scenefarm/doc_storage.h"
#include "support/process.h"
#include "support/queue_fixture.h"

namespace scenefarm::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class QueueDocKey : public QueueTest {
 protected:
  static std::string Hash(const std::string& id) { return "sf:{scenes}:scene:" + id; }
  static std::string Doc(const std::string& id) { return "sf:{scenes}:doc:" + id; }
  int64_t Int(std::vector<std::string> cmd) { return client_.Command(cmd)->AsInt(); }
  bool Exists(const std::string& key) { return Int({"EXISTS", key}) == 1; }
  std::set<std::string> FieldNames(const std::string& id) {
    std::set<std::string> names;
    auto keys = client_.Command({"HKEYS", Hash(id)});
    if (!keys.ok()) return names;
    for (const auto& f : keys->elements)
      names.insert(f.str);
    return names;
  }
  redis::Value EnqueueOne(const Scene& s) {  // enqueue.lua, as the scripts' tests call it
    auto r = client_.Eval(redis::Script{"enqueue", queue::scripts::k_enqueue},
                          {"sf:{scenes}:", std::to_string(clock_.NowMs()), s.id, "run1", "0", "1",
                           SceneToJson(s).dump()});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : redis::Value{};
  }
  int64_t Ttl(const std::string& key) { return Int({"TTL", key}); }

  // The hash and the doc key of a new-format scene expire together: both expire at the same
  // time (PEXPIRETIME, set by one script call: Redis 7.0 reads its clock at each EXPIRE, so a
  // preempted server may put milliseconds between them; 100 allowed), within the retention, or
  // neither expires (retention -1). Called with retentions far longer than the test runs.
  void ExpectSameLifetime(const std::string& id, int64_t retention) {
    SCOPED_TRACE(id);
    ASSERT_TRUE(Exists(Hash(id)));
    ASSERT_TRUE(Exists(Doc(id)));
    if (retention < 0) {
      EXPECT_EQ(Ttl(Hash(id)), -1);
      EXPECT_EQ(Ttl(Doc(id)), -1);
      return;
    }
    for (const std::string& key : {Hash(id), Doc(id)}) {
      EXPECT_GT(Ttl(key), 0) << key;
      EXPECT_LE(Ttl(key), retention) << key;
    }
    const int64_t at = Int({"PEXPIRETIME", Hash(id)});
    EXPECT_GT(at, 0);
    EXPECT_NEAR(static_cast<double>(Int({"PEXPIRETIME", Doc(id)})), static_cast<double>(at), 100);
  }

  // A pending scene as a version before the doc key wrote it: the document in the hash's `doc`
  // field (with enqueue.lua's and to_pending's fields), its place in pending, its run.
  std::string WriteOldScene(const std::string& id, int64_t seq) {
    const std::string doc = SceneToJson(MakeScene(id)).dump();
    const std::string now = std::to_string(clock_.NowMs());
    const std::vector<std::vector<std::string>> cmds = {
        {"HSET",         Hash(id),
         "doc",          doc,
         "run",          "run1",
         "priority",     "0",
         "seq",          std::to_string(seq),
         "retry_budget", "1",
         "attempts",     "0",
         "failures",     "0",
         "reclaims",     "0",
         "enqueued_at",  now},
        {"HSET", Hash(id), "state", "pending", "available_at", now},
        {"ZADD", "sf:{scenes}:pending", std::to_string(1000 * 2199023255552LL + seq), id},
        {"ZADD", "sf:{scenes}:pending_since", now, id},
        {"SET", "sf:{scenes}:seq", std::to_string(seq)},
        {"HINCRBY", "sf:{scenes}:run:run1", "total", "1"},
        {"SADD", "sf:{scenes}:runs", "run1"},
        {"SADD", "sf:queues", "scenes"}};
    for (const auto& c : cmds)
      EXPECT_TRUE(client_.Command(c).ok());
    return doc;
  }
};

TEST_F(QueueDocKey, ANewScenesDocumentIsInItsOwnKeyAndItsHashIsAListpack) {
  const Scene a = MakeScene("a"), b = MakeScene("b");
  ASSERT_TRUE(queue_.Enqueue({a}).ok());  // enqueue_many.lua
  auto one = client_.Eval(redis::Script{"enqueue", queue::scripts::k_enqueue},
                          {"sf:{scenes}:", std::to_string(clock_.NowMs()), "b", "run1", "0", "1",
                           SceneToJson(b).dump()});
  ASSERT_TRUE(one.ok() && one->integer == 1);
  for (const Scene& s : {a, b}) {
    SCOPED_TRACE(s.id);
    const std::string doc = SceneToJson(s).dump();
    ASSERT_GT(doc.size(), 64u) << "a document past the listpack's value limit";
    EXPECT_EQ(client_.Command({"GET", Doc(s.id)})->AsString(), doc);
    EXPECT_EQ(Int({"HEXISTS", Hash(s.id), "doc"}), 0);
    EXPECT_EQ(client_.Command({"OBJECT", "ENCODING", Hash(s.id)})->AsString(), "listpack");
    EXPECT_EQ(Field(s.id, "state"), "pending");
    EXPECT_EQ(Field(s.id, "available_at"), Field(s.id, "enqueued_at"));
    ExpectSameLifetime(s.id, -1);
    EXPECT_EQ(queue_.Show(s.id)->doc, json::parse(doc));
  }
  auto leased = MustLease("w1");
  EXPECT_EQ(leased.id, "a");
  EXPECT_EQ(leased.doc, SceneToJson(a).dump());
}

// The doc key follows its hash: the same TTL when a scene finishes (ack, cancel, a cancelled
// worker's stop, reclaim of a cancelled lease), none while it is dead or after a rerun, gone
// with its hash after a purge, and gone when the hash expires.
TEST_F(QueueDocKey, ADocKeyLivesExactlyAsLongAsItsHash) {
  constexpr int64_t kRetention = 3600;
  queue::QueueOptions o;
  o.retention_seconds = kRetention;
  queue::Queue q(client_, o, clock_);
  std::vector<Scene> scenes;
  for (const char* id : {"acked", "ack_leased", "cancelled", "stopped", "lost", "dead", "next"})
    scenes.push_back(MakeScene(id, 0, 0));
  ASSERT_TRUE(q.Enqueue(scenes).ok());

  ASSERT_EQ(*q.Cancel("cancelled"), "pending");
  ExpectSameLifetime("cancelled", kRetention);

  auto acked = q.Lease("w1", 30s);
  ASSERT_TRUE(acked.ok() && acked->has_value() && (*acked)->id == "acked");
  ASSERT_TRUE(q.Ack(**acked, "w1", {}).ok());
  ExpectSameLifetime("acked", kRetention);

  auto ack_leased = q.Lease("w1", 30s);
  ASSERT_TRUE(ack_leased.ok() && ack_leased->has_value());
  auto r = q.AckAndLease(**ack_leased, "w1", {}, 30s, "", {"scenes"});
  ASSERT_TRUE(r.ok() && r->next.has_value());
  ExpectSameLifetime("ack_leased", kRetention);
  const queue::LeasedScene stopped = *r->next;
  ASSERT_EQ(stopped.id, "stopped");
  ASSERT_EQ(*q.Cancel("stopped"), "leased");
  ASSERT_TRUE(q.AckCancelled(stopped, "w1").ok());  // fail.lua, outcome cancelled
  ExpectSameLifetime("stopped", kRetention);

  auto lost = q.Lease("w2", 30s);
  ASSERT_TRUE(lost.ok() && lost->has_value() && (*lost)->id == "lost");
  ASSERT_EQ(*q.Cancel("lost"), "leased");
  clock_.AdvanceMs(31000);
  ASSERT_EQ(*q.Reclaim(), 1);  // its worker is gone: reclaim cancels it
  EXPECT_EQ(Field("lost", "state"), "cancelled");
  ExpectSameLifetime("lost", kRetention);

  auto dead = q.Lease("w1", 30s);
  ASSERT_TRUE(dead.ok() && dead->has_value() && (*dead)->id == "dead");
  ASSERT_EQ(*q.Fail(**dead, "w1", "boom", false, 0ms), "dead");  // budget 0
  ExpectSameLifetime("dead", -1);  // a dead scene waits for retry or purge

  // Rerun of a succeeded scene: both persist again.
  ASSERT_TRUE(q.Rerun("acked", "test: again").ok());
  ExpectSameLifetime("acked", -1);

  // Purge: both gone.
  auto purged = q.PurgeDead(clock_.NowMs(), 100);
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, std::vector<std::string>{"dead"});
  EXPECT_FALSE(Exists(Hash("dead")));
  EXPECT_FALSE(Exists(Doc("dead")));

  // Expiry: a scene acked with a retention of one second leaves neither key behind.
  queue::QueueOptions short_lived = o;
  short_lived.retention_seconds = 1;
  queue::Queue s(client_, short_lived, clock_);
  auto next = s.Lease("w1", 30s);
  ASSERT_TRUE(next.ok() && next->has_value());
  const std::string id = (*next)->id;
  ASSERT_TRUE(s.Ack(**next, "w1", {}).ok());
  // No TTL check here: a loaded machine can spend the whole second before the next call.
  EXPECT_TRUE(WaitFor([&] { return !Exists(Hash(id)) && !Exists(Doc(id)); }));

  // Every doc key left belongs to a scene hash, and the other way round.
  auto docs = client_.Command({"KEYS", "sf:{scenes}:doc:*"});
  auto hashes = client_.Command({"KEYS", "sf:{scenes}:scene:*"});
  ASSERT_TRUE(docs.ok() && hashes.ok());
  EXPECT_EQ(docs->elements.size(), hashes->elements.size());
  for (const auto& d : docs->elements)
    EXPECT_TRUE(Exists(Hash(d.str.substr(std::string("sf:{scenes}:doc:").size())))) << d.str;
}

// An upgrade with scenes in Redis: scenes an earlier version enqueued (the document in the
// hash's `doc` field, no doc key) are leased, replayed, resumed and shown with their document,
// and acked, expired, cancelled and purged without a doc key appearing.
TEST_F(QueueDocKey, ScenesEnqueuedBeforeTheDocKeyAreStillReadAndFinishCleanly) {
  const std::string doc1 = WriteOldScene("old1", 1);
  const std::string doc2 = WriteOldScene("old2", 2);
  const std::string doc3 = WriteOldScene("old3", 3);
  const std::string doc4 = WriteOldScene("old4", 4);
  ASSERT_TRUE(queue_.Enqueue({MakeScene("new")}).ok());  // behind them: seq 5

  auto shown = queue_.Show("old1");
  ASSERT_TRUE(shown.ok()) << shown.status().ToString();
  EXPECT_EQ(shown->doc, json::parse(doc1));

  // lease.lua
  auto old1 = MustLease("w1");
  EXPECT_EQ(old1.id, "old1");
  EXPECT_EQ(old1.doc, doc1);
  // ack_lease.lua, and its replay after a lost reply
  auto r = queue_.AckAndLease(old1, "w1", {}, 30s, "", {"scenes"});
  ASSERT_TRUE(r.ok() && r->next.has_value()) << r.status().ToString();
  EXPECT_EQ(r->next->id, "old2");
  EXPECT_EQ(r->next->doc, doc2);
  auto again = queue_.AckAndLease(old1, "w1", {}, 30s, "", {"scenes"});
  ASSERT_TRUE(again.ok() && again->next.has_value()) << again.status().ToString();
  EXPECT_EQ(again->next->id, "old2");
  EXPECT_EQ(again->next->doc, doc2);
  EXPECT_GT(Ttl(Hash("old1")), 0);  // acked: expires
  // resume.lua: the worker restarts and takes old2 back.
  auto resumed = queue_.Resume("w1", 30s);
  ASSERT_TRUE(resumed.ok());
  ASSERT_EQ(resumed->size(), 1u);
  EXPECT_EQ((*resumed)[0].id, "old2");
  EXPECT_EQ((*resumed)[0].doc, doc2);
  // Dead-lettered, then purged.
  ASSERT_EQ(*queue_.Fail((*resumed)[0], "w1", "boom", true, 0ms), "dead");
  auto purged = queue_.PurgeDead(clock_.NowMs(), 100);
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, std::vector<std::string>{"old2"});
  EXPECT_FALSE(Exists(Hash("old2")));
  // Cancelled while pending: expires.
  ASSERT_EQ(*queue_.Cancel("old3"), "pending");
  EXPECT_GT(Ttl(Hash("old3")), 0);
  // Acked and rerun: persists, and is leased again with its document.
  auto old4 = MustLease("w2");
  ASSERT_EQ(old4.id, "old4");
  EXPECT_EQ(old4.doc, doc4);
  ASSERT_TRUE(queue_.Ack(old4, "w2", {}).ok());
  ASSERT_TRUE(queue_.Rerun("old4", "test: again").ok());
  EXPECT_EQ(Ttl(Hash("old4")), -1);
  auto new_first = MustLease("w2");  // "new" was pending before old4's rerun
  EXPECT_EQ(new_first.id, "new");
  auto rerun = MustLease("w2");
  EXPECT_EQ(rerun.id, "old4");
  EXPECT_EQ(rerun.doc, doc4);
  EXPECT_EQ(queue_.Show("old4")->doc, json::parse(doc4));

  // None of them grew a doc key; their hashes kept their `doc` field.
  for (const char* id : {"old1", "old2", "old3", "old4"})
    EXPECT_FALSE(Exists(Doc(id))) << id;
  EXPECT_EQ(Field("old1", "doc"), doc1);
  EXPECT_EQ(Field("old3", "doc"), doc3);

  // An acked old scene with a retention of one second expires and leaves nothing behind.
  queue::QueueOptions o;
  o.retention_seconds = 1;
  queue::Queue short_lived(client_, o, clock_);
  ASSERT_TRUE(short_lived.Ack(rerun, "w2", {}).ok());
  EXPECT_TRUE(WaitFor([&] { return !Exists(Hash("old4")); }));
  EXPECT_FALSE(Exists(Doc("old4")));
}

// The fields enqueue.lua and to_pending wrote before the doc key (eff3482's enqueue.lua): the
// format a version of then reads.
const std::set<std::string> kOldFields = {"doc",          "run",      "priority",    "seq",
                                          "retry_budget", "attempts", "failures",    "reclaims",
                                          "enqueued_at",  "state",    "available_at"};

// sf:doc_storage = hash (mixed versions, a rollback): both enqueue scripts write the document
// into the hash's `doc` field and no doc key, the fields exactly as before the doc key, and a
// reader of an earlier version (HGET doc) finds it. "key" and absent write the doc key.
TEST_F(QueueDocKey, HashStorageEnqueuesTheFormatOfEarlierVersions) {
  auto mode = queue::GetDocStorage(client_);
  ASSERT_TRUE(mode.ok());
  EXPECT_EQ(mode->mode, "key");
  EXPECT_TRUE(mode->is_default);
  ASSERT_TRUE(queue::SetDocStorage(client_, "hash").ok());
  mode = queue::GetDocStorage(client_);
  ASSERT_TRUE(mode.ok());
  EXPECT_EQ(mode->mode, "hash");
  EXPECT_FALSE(mode->is_default);
  EXPECT_EQ(queue::SetDocStorage(client_, "both").code(), StatusCode::kInvalidArgument);

  const Scene a = MakeScene("a"), b = MakeScene("b");
  ASSERT_TRUE(queue_.Enqueue({a}).ok());  // enqueue_many.lua
  ASSERT_EQ(EnqueueOne(b).integer, 1);    // enqueue.lua
  WriteOldScene("old", 3);                // as the earlier version wrote it
  EXPECT_EQ(FieldNames("old"), kOldFields);
  for (const Scene& s : {a, b}) {
    SCOPED_TRACE(s.id);
    EXPECT_FALSE(Exists(Doc(s.id)));
    EXPECT_EQ(Field(s.id, "doc"), SceneToJson(s).dump());  // what an earlier version reads
    EXPECT_EQ(FieldNames(s.id), kOldFields);
    EXPECT_EQ(Field(s.id, "state"), "pending");
    EXPECT_EQ(Field(s.id, "available_at"), Field(s.id, "enqueued_at"));
    EXPECT_EQ(Field(s.id, "attempts"), "0");
    EXPECT_EQ(queue_.Show(s.id)->doc, SceneToJson(s));
  }
  EXPECT_EQ(MustLease("w1").doc, SceneToJson(a).dump());
  EXPECT_EQ(MustLease("w1").doc, SceneToJson(b).dump());

  // "key": the doc key again.
  ASSERT_TRUE(queue::SetDocStorage(client_, "key").ok());
  const Scene c = MakeScene("c"), d = MakeScene("d");
  ASSERT_TRUE(queue_.Enqueue({c}).ok());
  ASSERT_EQ(EnqueueOne(d).integer, 1);
  for (const Scene& s : {c, d}) {
    EXPECT_EQ(client_.Command({"GET", Doc(s.id)})->AsString(), SceneToJson(s).dump()) << s.id;
    EXPECT_EQ(Int({"HEXISTS", Hash(s.id), "doc"}), 0) << s.id;
  }
}

// Any other value of sf:doc_storage (or a key of another type) is refused by both enqueue
// scripts with a scenefarm error, before they write anything.
TEST_F(QueueDocKey, AnUnknownDocStorageIsRefusedAndNothingIsWritten) {
  for (const std::vector<std::string>& set :
       {std::vector<std::string>{"SET", "sf:doc_storage", "Hash"},
        std::vector<std::string>{"SET", "sf:doc_storage", ""},
        std::vector<std::string>{"HSET", "sf:doc_storage", "mode", "hash"}}) {
    SCOPED_TRACE(set[2] + (set.size() > 3 ? " " + set[3] : ""));
    ASSERT_TRUE(client_.Command({"FLUSHALL"}).ok());
    ASSERT_TRUE(client_.Command(set).ok());
    auto many = queue_.Enqueue({MakeScene("a"), MakeScene("b")});
    ASSERT_FALSE(many.ok());
    EXPECT_NE(many.status().message().find("scenefarm: sf:doc_storage must be"), std::string::npos)
        << many.status().message();
    const redis::Value one = EnqueueOne(MakeScene("c"));
    ASSERT_TRUE(one.is_error());
    EXPECT_NE(one.str.find("ERR scenefarm: sf:doc_storage must be"), std::string::npos) << one.str;
    EXPECT_EQ(Int({"DBSIZE"}), 1);  // sf:doc_storage alone
    EXPECT_EQ(queue::GetDocStorage(client_).status().code(), StatusCode::kFailedPrecondition);
  }
}

// `scenefarm doc-storage hash`'s walk (MoveDocsToHash, a few ids per script call): pending,
// delayed, leased, dead and finished scenes get their document back into their hash (their TTL
// kept), orphan doc keys go, other queues are left to their own walk. Afterwards no doc key is
// left, and every scene is read as an earlier version reads it: the hash's `doc` field.
TEST_F(QueueDocKey, MovingDocumentsIntoHashesLeavesTheFormatOfEarlierVersions) {
  queue::QueueOptions o;
  o.retention_seconds = 3600;
  queue::Queue q(client_, o, clock_);
  std::vector<Scene> scenes;
  for (const char* id : {"done", "leased", "dead", "delayed", "p1", "p2", "p3", "p4"})
    scenes.push_back(MakeScene(id, 0, 1));
  ASSERT_TRUE(q.Enqueue(scenes).ok());
  WriteOldScene("old", 100);  // already in its hash: left alone
  auto done = MustLease("w1");
  ASSERT_EQ(done.id, "done");
  ASSERT_TRUE(q.Ack(done, "w1", {}).ok());
  const queue::LeasedScene leased = MustLease("w1");
  ASSERT_EQ(leased.id, "leased");
  auto dead = MustLease("w2");
  ASSERT_EQ(*q.Fail(dead, "w2", "boom", true, 0ms), "dead");
  auto delayed = MustLease("w2");
  ASSERT_EQ(*q.Fail(delayed, "w2", "flaky", false, 60s), "delayed");
  ASSERT_TRUE(client_.Command({"SET", Doc("ghost"), "{}"}).ok());  // its hash is gone
  queue::QueueOptions other_options;
  other_options.name = "other";
  queue::Queue other(client_, other_options, clock_);
  ASSERT_TRUE(other.Enqueue({MakeScene("x")}).ok());

  ASSERT_TRUE(queue::SetDocStorage(client_, "hash").ok());  // the mode first, then the walk
  auto moved = queue::MoveDocsToHash(client_, "scenes", 3);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->moved, 8);
  EXPECT_EQ(moved->orphans, 1);
  EXPECT_TRUE(client_.Command({"KEYS", "sf:{scenes}:doc:*"})->elements.empty());
  EXPECT_TRUE(Exists("sf:{other}:doc:x"));  // another queue: its own walk
  for (const Scene& s : scenes) {
    SCOPED_TRACE(s.id);
    EXPECT_EQ(Field(s.id, "doc"), SceneToJson(s).dump());
    EXPECT_FALSE(Exists(Doc(s.id)));
  }
  EXPECT_GT(Ttl(Hash("done")), 0);   // kept its retention
  EXPECT_EQ(Ttl(Hash("dead")), -1);  // waits for retry or purge
  EXPECT_EQ(Field("dead", "state"), "dead");
  EXPECT_EQ(Field("leased", "state"), "leased");
  // A second walk finds nothing to move.
  auto again = queue::MoveDocsToHash(client_, "scenes", 3);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->moved, 0);
  EXPECT_EQ(again->orphans, 0);
  auto x = queue::MoveDocsToHash(client_, "other", 200);
  ASSERT_TRUE(x.ok());
  EXPECT_EQ(x->moved, 1);

  // Every scene is read from its hash: leased, retried, acked by the worker that holds it.
  const queue::LeasedScene p1 = MustLease("w3");
  EXPECT_EQ(p1.id, "p1");
  EXPECT_EQ(p1.doc, SceneToJson(scenes[4]).dump());
  ASSERT_TRUE(q.Ack(leased, "w1", {}).ok());
  ASSERT_TRUE(q.Retry("dead").ok());
  const queue::LeasedScene retried = MustLease("w3");  // back at its place (seq 3)
  EXPECT_EQ(retried.id, "dead");
  EXPECT_EQ(retried.doc, SceneToJson(scenes[2]).dump());
  EXPECT_EQ(queue_.Show("delayed")->doc, SceneToJson(scenes[3]));
  // A scene enqueued now is in the old format too.
  ASSERT_TRUE(queue_.Enqueue({MakeScene("later")}).ok());
  EXPECT_FALSE(Exists(Doc("later")));
  EXPECT_EQ(FieldNames("later"), kOldFields);

  // A bad batch is refused before it writes.
  auto bad = client_.Eval(redis::Script{"doc_to_hash", queue::scripts::k_doc_to_hash},
                          {"sf:{scenes}:", "0"});
  ASSERT_TRUE(bad.ok() && bad->is_error());
  EXPECT_NE(bad->str.find("ERR scenefarm: scene ids"), std::string::npos) << bad->str;
}

// A doc key an earlier version left behind (its purge deleted only the hash) must never shadow a
// newer document: enqueue in `hash` mode deletes it, and the walk deletes one whose hash already
// holds a `doc` field instead of overwriting that field. A scene key that is not a hash (a
// damaged record) is left for an operator, and the walk moves the other scenes of its batch.
TEST_F(QueueDocKey, AStaleDocKeyNeverShadowsANewerDocument) {
  ASSERT_TRUE(client_.Command({"SET", Doc("again"), "{\"stale\":true}"}).ok());
  ASSERT_TRUE(queue::SetDocStorage(client_, "hash").ok());
  const Scene again = MakeScene("again");
  ASSERT_TRUE(queue_.Enqueue({again}).ok());
  EXPECT_FALSE(Exists(Doc("again")));
  EXPECT_EQ(Field("again", "doc"), SceneToJson(again).dump());
  EXPECT_EQ(EnqueueOne(MakeScene("one")).integer, 1);  // enqueue.lua the same way
  ASSERT_TRUE(client_.Command({"SET", Doc("one2"), "{\"stale\":true}"}).ok());
  EXPECT_EQ(EnqueueOne(MakeScene("one2")).integer, 1);
  EXPECT_FALSE(Exists(Doc("one2")));

  // The walk: a stale key beside a hash with its document, a damaged record, a real move.
  ASSERT_TRUE(client_.Command({"SET", Doc("again"), "{\"stale\":true}"}).ok());
  ASSERT_TRUE(client_.Command({"SET", Hash("broken"), "not a hash"}).ok());
  ASSERT_TRUE(client_.Command({"SET", Doc("broken"), "{\"kept\":true}"}).ok());
  ASSERT_TRUE(queue::SetDocStorage(client_, "key").ok());
  const Scene fresh = MakeScene("fresh");
  ASSERT_TRUE(queue_.Enqueue({fresh}).ok());
  ASSERT_TRUE(Exists(Doc("fresh")));
  auto moved = queue::MoveDocsToHash(client_, "scenes", 200);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(moved->moved, 1);    // fresh
  EXPECT_EQ(moved->orphans, 1);  // again's stale key
  EXPECT_EQ(Field("again", "doc"), SceneToJson(again).dump());
  EXPECT_EQ(Field("fresh", "doc"), SceneToJson(fresh).dump());
  EXPECT_FALSE(Exists(Doc("again")));
  EXPECT_EQ(client_.Command({"GET", Doc("broken")})->AsString(), "{\"kept\":true}");
  EXPECT_EQ(client_.Command({"GET", Hash("broken")})->AsString(), "not a hash");
  EXPECT_EQ(MustLease("w1").doc, SceneToJson(again).dump());
}

}  // namespace
}  // namespace scenefarm::testing
