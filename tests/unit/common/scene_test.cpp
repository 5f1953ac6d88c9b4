#include "scenefarm/scene.h"

#include <gtest/gtest.h>

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
}

}  // namespace
}  // namespace scenefarm
