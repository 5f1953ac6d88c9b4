#include "scenefarm/scene.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "scenefarm/redis.h"

namespace scenefarm {
namespace {

const char* kWorkflow = R"({"1": {"class_type": "EmptyImage", "inputs": {}}})";

std::string Doc(const std::string& extra) {
  return std::string(R"({"workflow": )") + kWorkflow + (extra.empty() ? "" : ", " + extra) + "}";
}

TEST(Scene, DefaultsIdAndRun) {
  auto s = ParseScene(Doc(""));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->run, "default");
  EXPECT_EQ(s->id.rfind("s-", 0), 0u);
  EXPECT_TRUE(IsValidId(s->id));
  EXPECT_EQ(s->priority, 0);
  EXPECT_FALSE(s->retry_budget.has_value());
}

TEST(Scene, RefusalsNameTheField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {Doc(R"("id": "../etc")"), "'id'"},
      {Doc(R"("id": "..")"), "'id'"},
      {Doc(R"("run": "")"), "'run'"},
      {Doc(R"("priority": "high")"), "'priority'"},
      {Doc(R"("priority": 5000)"), "'priority'"},
      // Above INT64_MAX: out of range, not read as -1 (found while writing fuzz_scene).
      {Doc(R"("priority": 18446744073709551615)"), "'priority'"},
      {Doc(R"("retry_budget": 18446744073709551615)"), "'retry_budget'"},
      {Doc(R"("retry_budget": -1)"), "'retry_budget'"},
      {Doc(R"("expected_frames": 2.5)"), "'expected_frames'"},
      {Doc(R"("metadata": [])"), "'metadata'"},
      {Doc(R"("colour": 1)"), "'colour'"},
      {R"({"id": "a"})", "'workflow' is missing"},
      {R"({"workflow": {}})", "'workflow'"},
      {R"({"workflow": {"1": {"inputs": {}}}})", "class_type"},
      {"[1,2", "not valid JSON"},
      {"42", "JSON object"},
  };
  for (const auto& [doc, needle] : cases) {
    auto s = ParseScene(doc);
    ASSERT_FALSE(s.ok()) << doc;
    EXPECT_EQ(s.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(needle), std::string::npos)
        << doc << " -> " << s.status().message();
  }
}

std::string WithPrefix(const nlohmann::json& prefix) {
  nlohmann::json d = {{"workflow",
                       {{"1", {{"class_type", "EmptyImage"}, {"inputs", nlohmann::json::object()}}},
                        {"2",
                         {{"class_type", "SaveImage"},
                          {"inputs", {{"images", {"1", 0}}, {"filename_prefix", prefix}}}}}}}};
  return d.dump();
}

TEST(Scene, FilenamePrefixMustStayInsideTheOutputDirectory) {
  const std::vector<std::string> bad = {"../x",
                                        "a/../../x",
                                        "a/..",
                                        "..",
                                        "/etc/x",
                                        "a//b",
                                        "./a",
                                        "a\\..\\b",
                                        std::string("a\0b", 3),
                                        "a\nb",
                                        "a\x7f",
                                        "",
                                        std::string(201, 'x'),
                                        "ok/" + std::string(201, 'x')};
  for (const auto& p : bad) {
    auto s = ParseScene(WithPrefix(p));
    ASSERT_FALSE(s.ok()) << nlohmann::json(p).dump();
    EXPECT_NE(s.status().message().find("'workflow' node '2' filename_prefix"), std::string::npos)
        << s.status().message();
  }
  for (const std::string& p :
       std::vector<std::string>{"run1/scene_01", "x", "a.b/c-d_e", std::string(200, 'x')}) {
    EXPECT_TRUE(ParseScene(WithPrefix(p)).ok()) << p;
  }
  EXPECT_TRUE(ParseScene(WithPrefix(nlohmann::json::array({"3", 0}))).ok()) << "a link";
  EXPECT_FALSE(IsValidId(std::string(129, 'a')));
  EXPECT_FALSE(IsValidId("a/b"));
  EXPECT_FALSE(IsValidId(std::string("a\0", 2)));
}

TEST(SceneStream, RefusesDocumentsOverTheSizeLimit) {
  const std::string small = Doc(R"("id": "a")");
  const std::string big =
      Doc(R"("id": "b", "metadata": {"pad": ")" + std::string(300, 'p') + "\"}");
  const size_t limit = 200;
  ASSERT_LT(small.size(), limit);
  ASSERT_GT(big.size(), limit);
  auto lines = ParseSceneStream(small + "\n" + big + "\n", {}, limit);
  ASSERT_FALSE(lines.ok());
  EXPECT_NE(lines.status().message().find("line 2: scene document is"), std::string::npos)
      << lines.status().message();
  EXPECT_NE(lines.status().message().find("limit of 200"), std::string::npos);
  auto arr = ParseSceneStream("[" + small + "," + big + "]", {}, limit);
  ASSERT_FALSE(arr.ok());
  EXPECT_NE(arr.status().message().find("element 1: scene document is"), std::string::npos);
  auto one = ParseSceneStream(big, {}, limit);
  ASSERT_FALSE(one.ok());
  EXPECT_NE(one.status().message().find("document: scene document is"), std::string::npos);
  EXPECT_TRUE(ParseSceneStream(small + "\n" + big, {}, big.size()).ok());
  EXPECT_TRUE(ParseSceneStream(small + "\n" + big).ok()) << "default limit 1 MiB";
  const std::string huge =
      Doc(R"("metadata": {"pad": ")" + std::string(kDefaultMaxSceneBytes, 'p') + "\"}");
  EXPECT_FALSE(ParseSceneStream(huge).ok());
}

TEST(Scene, RoundTripsThroughJson) {
  auto s = ParseScene(Doc(R"("id": "shot_01.a", "run": "story-7", "priority": -3,
                             "retry_budget": 2, "expected_frames": 24, "metadata": {"k": 1})"));
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto back = SceneFromJson(SceneToJson(*s));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->id, "shot_01.a");
  EXPECT_EQ(back->run, "story-7");
  EXPECT_EQ(back->priority, -3);
  EXPECT_EQ(back->retry_budget, 2);
  EXPECT_EQ(back->expected_frames, 24);
  EXPECT_EQ(back->metadata["k"], 1);
}

TEST(SceneStream, ObjectArrayAndJsonLines) {
  EXPECT_EQ(ParseSceneStream(Doc(R"("id": "a")"))->size(), 1u);
  EXPECT_EQ(
      ParseSceneStream(std::string("[").append(Doc("")).append(",").append(Doc("")).append("]"))
          ->size(),
      2u);
  auto lines = ParseSceneStream(Doc(R"("id": "a")") + "\n\n" + Doc(R"("id": "b")") + "\n",
                                std::string("r9"));
  ASSERT_TRUE(lines.ok());
  ASSERT_EQ(lines->size(), 2u);
  EXPECT_EQ((*lines)[1].id, "b");
  EXPECT_EQ((*lines)[1].run, "r9");
  EXPECT_TRUE(ParseSceneStream("  \n")->empty());
}

TEST(SceneStream, ErrorsNameTheLineOrElement) {
  auto bad_line = ParseSceneStream(Doc("") + "\n{oops\n");
  ASSERT_FALSE(bad_line.ok());
  EXPECT_NE(bad_line.status().message().find("line 2"), std::string::npos);
  auto bad_elem =
      ParseSceneStream(std::string("[").append(Doc("")).append(R"(, {"workflow": 3}])"));
  ASSERT_FALSE(bad_elem.ok());
  EXPECT_NE(bad_elem.status().message().find("element 1"), std::string::npos);
}

// JSON lines of `count` scenes l1..lN (about 90 bytes each), blank lines between some, `bad`
// (1-based scene numbers) replaced by a line that is not JSON.
std::string Lines(size_t count, const std::set<size_t>& bad = {}) {
  std::string text;
  for (size_t i = 1; i <= count; ++i) {
    if (bad.count(i)) {
      text += "{oops\n";
      continue;
    }
    text += Doc(R"("id": "l)" + std::to_string(i) + "\"") + "\n";
    if (i % 1000 == 0) text += "  \n";
  }
  return text;
}

// What ForEachSceneInParts hands over: the scenes in input order (parts concatenated), which
// parts saw any, and the error.
struct Parted {
  std::vector<std::string> ids;
  std::set<size_t> parts;
  Status status;
};
Parted ParseInParts(const std::string& text, size_t parts) {
  std::vector<std::vector<std::string>> per(parts);
  Parted out;
  out.status = ForEachSceneInParts(text, std::nullopt, kDefaultMaxSceneBytes, parts,
                                   [&](size_t part, Scene&& s) {
                                     per.at(part).push_back(s.id);
                                     return Status::Ok();
                                   });
  for (size_t k = 0; k < parts; ++k) {
    if (!per[k].empty()) out.parts.insert(k);
    out.ids.insert(out.ids.end(), per[k].begin(), per[k].end());
  }
  return out;
}

TEST(SceneStream, JsonLinesInPartsKeepTheirOrderAndTheirLineNumbers) {
  const std::string text = Lines(40000);  // ~3.6 MB: 3 parts of at least 1 MiB
  ASSERT_GT(text.size(), size_t{3} << 20);
  const Parted one = ParseInParts(text, 1);
  const Parted three = ParseInParts(text, 3);
  ASSERT_TRUE(one.status.ok()) << one.status.message();
  ASSERT_TRUE(three.status.ok()) << three.status.message();
  ASSERT_EQ(one.ids.size(), 40000u);
  EXPECT_EQ(three.ids, one.ids);
  EXPECT_EQ(three.parts, (std::set<size_t>{0, 1, 2}));
  EXPECT_EQ(ParseInParts(text.substr(0, text.size() - 1), 3).ids, one.ids);  // no last newline
  // Small inputs stay in one part.
  EXPECT_EQ(ParseInParts(Lines(10), 4).parts, std::set<size_t>{0});

  // Scene 39,000 is in the last part: its line number counts every line before it, blank ones
  // (one after each thousandth scene) included.
  const Parted late = ParseInParts(Lines(40000, {39000}), 3);
  ASSERT_FALSE(late.status.ok());
  EXPECT_NE(late.status.message().find("line 39038:"), std::string::npos) << late.status.message();
  // Two bad lines in different parts: the first one is the error, as in one pass.
  for (size_t parts : {1, 2, 3, 8}) {
    const Parted two = ParseInParts(Lines(40000, {5, 39000}), parts);
    ASSERT_FALSE(two.status.ok());
    EXPECT_NE(two.status.message().find("line 5:"), std::string::npos)
        << parts << ": " << two.status.message();
  }
}

TEST(RedisUrl, ParsesEveryPart) {
  auto u = redis::ParseRedisUrl("redis://user:pw@10.1.2.3:6380/2");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->user, "user");
  EXPECT_EQ(u->password, "pw");
  EXPECT_EQ(u->host, "10.1.2.3");
  EXPECT_EQ(u->port, 6380);
  EXPECT_EQ(u->db, 2);
  auto p = redis::ParseRedisUrl("redis://:secret@host:6379");
  EXPECT_EQ(p->password, "secret");
  EXPECT_EQ(p->user, "");
  EXPECT_EQ(p->db, 0);
  auto bad = redis::ParseRedisUrl("http://:secret@host:6379");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().find("secret"), std::string::npos);
  EXPECT_FALSE(redis::ParseRedisUrl("redis://host:99999").ok());
  EXPECT_FALSE(redis::ParseRedisUrl("redis://host:").ok());
  auto defaults = redis::ParseRedisUrl("redis://");
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->host, "127.0.0.1");
  EXPECT_EQ(defaults->port, 6379);
  EXPECT_FALSE(defaults->sentinel());
}

TEST(RedisUrl, ParsesSentinelUrls) {
  auto u =
      redis::ParseRedisUrl("redis+sentinel://:pw@10.0.0.1:26380,sent-2,[::1]:26381/mymaster/3");
  ASSERT_TRUE(u.ok()) << u.status().message();
  ASSERT_TRUE(u->sentinel());
  ASSERT_EQ(u->sentinels.size(), 3u);
  EXPECT_EQ(u->sentinels[0], (std::pair<std::string, int>{"10.0.0.1", 26380}));
  EXPECT_EQ(u->sentinels[1], (std::pair<std::string, int>{"sent-2", 26379}));  // default port
  EXPECT_EQ(u->sentinels[2], (std::pair<std::string, int>{"::1", 26381}));
  EXPECT_EQ(u->master_name, "mymaster");
  EXPECT_EQ(u->db, 3);
  EXPECT_EQ(u->password, "pw");
  auto no_db = redis::ParseRedisUrl("redis+sentinel://h:1/m");
  ASSERT_TRUE(no_db.ok());
  EXPECT_EQ(no_db->db, 0);
  EXPECT_EQ(no_db->master_name, "m");
  auto wait = redis::ParseRedisUrl("redis+sentinel://h:1/m/2?wait_replicas=1&wait_timeout_ms=250");
  ASSERT_TRUE(wait.ok()) << wait.status().message();
  EXPECT_EQ(wait->wait_replicas, 1);
  EXPECT_EQ(wait->wait_timeout_ms, 250);
  EXPECT_EQ(wait->db, 2);
  auto plain_wait = redis::ParseRedisUrl("redis://:p@h:1/0?wait_replicas=2");
  ASSERT_TRUE(plain_wait.ok());
  EXPECT_EQ(plain_wait->wait_replicas, 2);
  EXPECT_EQ(plain_wait->wait_timeout_ms, 1000);
  EXPECT_EQ(plain_wait->password, "p");
  for (const char* bad : {"redis+sentinel://:secret@h:1/m?wait_replicas=x",
                          "redis+sentinel://:secret@h:1/m?wait_replica=1",
                          "redis://:secret@h:1/0?wait_timeout_ms=0", "redis+sentinel://:secret@h:1",
                          "redis+sentinel://:secret@h:1/", "redis+sentinel://:secret@h:1,,h2:2/m",
                          "redis+sentinel://:secret@h:0/m", "redis+sentinel://:secret@h:1/m/x"}) {
    auto r = redis::ParseRedisUrl(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().message().find("secret"), std::string::npos) << r.status().message();
  }
}

}  // namespace
}  // namespace scenefarm
