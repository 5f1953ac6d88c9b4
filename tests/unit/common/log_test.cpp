#include "scenefarm/log.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace scenefarm::log {
namespace {

TEST(Log, WritesOneJsonObjectPerEvent) {
  Init("worker", "info");
  ::testing::internal::CaptureStderr();
  Info("scene_leased", {{"scene_id", "s1"}, {"attempt", 2}});
  Debug("not_written");
  const std::string out = ::testing::internal::GetCapturedStderr();
  ASSERT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
  const auto line = nlohmann::json::parse(out);
  EXPECT_EQ(line["event"], "scene_leased");
  EXPECT_EQ(line["component"], "worker");
  EXPECT_EQ(line["level"], "info");
  EXPECT_EQ(line["scene_id"], "s1");
  EXPECT_EQ(line["attempt"], 2);
  EXPECT_EQ(line["ts"].get<std::string>().back(), 'Z');
}

TEST(RedactUrl, HidesPasswordsOnly) {
  EXPECT_EQ(RedactUrl("redis://user:secret@10.0.0.1:6379/0"), "redis://user:***@10.0.0.1:6379/0");
  EXPECT_EQ(RedactUrl("redis://:secret@host:6379"), "redis://:***@host:6379");
  EXPECT_EQ(RedactUrl("redis://host:6379/0"), "redis://host:6379/0");
  EXPECT_EQ(RedactUrl("http://127.0.0.1:8188"), "http://127.0.0.1:8188");
}

}  // namespace
}  // namespace scenefarm::log
