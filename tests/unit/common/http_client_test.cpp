#include "scenefarm/http_client.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "server.h"
#include "support/net.h"
#include "support/process.h"

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

TEST(Client, ABodyOverTheLimitIsAClearErrorAndIsNotRead) {
  using namespace std::chrono_literals;
  scenefarm::testing::TempDir dir;
  scenefarm::testing::comfy::ServerOptions so;
  so.base_dir = dir.path();
  scenefarm::testing::comfy::Server server(so);
  ASSERT_TRUE(server.Start().ok());
  // The test server answers GET /big with a 100 kB JSON string.
  const nlohmann::json fault = {{"http",
                                 {{{"method", "GET"},
                                   {"path", "/big"},
                                   {"status", 200},
                                   {"body", std::string(100000, 'x')},
                                   {"count", 0}}}}};
  Client control(server.url());
  auto set = control.Post("/_test/faults", fault.dump());
  ASSERT_TRUE(set.ok() && set->status == 200);

  Client small(server.url(), {2000ms, 10000ms, nullptr, 50000});
  auto r = small.Get("/big");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  EXPECT_NE(r.status().message().find("response body larger than 50000 bytes"), std::string::npos)
      << r.status().ToString();
  EXPECT_NE(r.status().message().find("/big"), std::string::npos);
  // The same client goes on working, and a limit above the body reads it whole.
  small.set_options({2000ms, 10000ms, nullptr, 200000});
  auto whole = small.Get("/big");
  ASSERT_TRUE(whole.ok()) << whole.status().ToString();
  EXPECT_EQ(whole->body.size(), 100002u);  // the JSON string's quotes
}

}  // namespace
}  // namespace scenefarm::http
