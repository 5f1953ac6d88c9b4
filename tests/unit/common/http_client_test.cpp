#include "scenefarm/http_client.h"

#include <gtest/gtest.h>

#include "support/net.h"

namespace scenefarm::http {
namespace {

TEST(ParseUrl, SplitsHostPortAndPath) {
  auto u = ParseUrl("http://127.0.0.1:8188/api");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "http");
  EXPECT_EQ(u->host, "127.0.0.1");
  EXPECT_EQ(u->port, 8188);
  EXPECT_EQ(u->path, "/api");
  auto d = ParseUrl("https://comfy.local");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->port, 443);
  EXPECT_EQ(d->path, "/");
}

TEST(ParseUrl, RefusesWhatIsNotAnHttpUrl) {
  for (const char* bad : {"127.0.0.1:8188", "ftp://x:1", "http://:80", "http://h:0", "http://h:x",
                          "http://h:70000"}) {
    auto u = ParseUrl(bad);
    ASSERT_FALSE(u.ok()) << bad;
    EXPECT_EQ(u.status().code(), StatusCode::kInvalidArgument);
  }
}

TEST(UrlEncode, KeepsUnreservedAndEscapesTheRest) {
  EXPECT_EQ(UrlEncode("scene_01-a.png~"), "scene_01-a.png~");
  EXPECT_EQ(UrlEncode("../a b/&"), "..%2Fa%20b%2F%26");
}

TEST(Client, RefusedConnectionIsUnavailable) {
  const int port = scenefarm::testing::FreePort();  // nothing listens there
  Client c("http://127.0.0.1:" + std::to_string(port) + "/");
  auto r = c.Get("/system_stats");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("/system_stats"), std::string::npos);
}

}  // namespace
}  // namespace scenefarm::http
