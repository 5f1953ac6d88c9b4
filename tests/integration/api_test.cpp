// The JSON API under /api/ (issue #17): scenefarm-exporter as a process against a real
// redis-server, state written through the queue protocol; every GET shape, paging and search,
// the errors (400, 404, 405, 413), enqueue's validation (nothing enqueued on a bad body), and the
// actions' gate: disabled, no users, no auth, no or wrong CSRF token, another origin; an allowed
// action records who did it.
// GCC 12 at -O3 (Release) reports -Wrestrict inside libstdc++'s operator+(const char*,
// std::string&&), e.g. "b" + std::to_string(i): GCC bug 105329, a false positive (fixed in
// GCC 13). Placed before the includes: the warning's location is in <bits/char_traits.h>.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif
#include <arpa/inet.h>
#include <crypt.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include "scenefarm/queue.h"
#include "support/net.h"
#include "support/process.h"
#include "support/redis_server.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct Reply {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  json j;  // the body parsed (discarded when not JSON)
};

// One HTTP/1.1 request on a connection of its own (the test's own client: it sets any header).
Reply Http(int port, const std::string& method, const std::string& target,
           const std::string& body = "", const std::vector<std::string>& headers = {}) {
  Reply out;
  const int fd = ConnectLoopback(port, 60);
  if (fd < 0) return out;
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nConnection: close\r\n";
  if (method == "POST") req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  for (const auto& h : headers)
    req += h + "\r\n";
  req += "\r\n" + body;
  for (size_t sent = 0; sent < req.size();) {
    const ssize_t n = send(fd, req.data() + sent, req.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[65536];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  const size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return out;
  out.status = std::atoi(raw.c_str() + 9);
  size_t at = raw.find("\r\n") + 2;
  while (at < end) {
    const size_t eol = raw.find("\r\n", at);
    const std::string line = raw.substr(at, eol - at);
    const size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (auto& ch : name)
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      out.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    at = eol + 2;
  }
  out.body = raw.substr(end + 4);
  out.j = json::parse(out.body, nullptr, false);
  return out;
}

std::string Basic(const std::string& user, const std::string& password) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::string in = user + ":" + password;
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    out += {t[(v >> 18) & 63], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (i + 1 == in.size()) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += {t[(v >> 18) & 63], t[(v >> 12) & 63], '=', '='};
  } else if (i + 2 == in.size()) {
    const unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += {t[(v >> 18) & 63], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return "Authorization: Basic " + out;
}

Scene MakeScene(const std::string& id, const std::string& run = "story") {
  Scene s;
  s.id = id;
  s.run = run;
  s.workflow = {{"1", {{"class_type", "EmptyImage"}, {"inputs", json::object()}}}};
  return s;
}

const char kSceneLine[] =
    R"({"id": "%s", "workflow": {"1": {"class_type": "EmptyImage", "inputs": {}}}})";
std::string SceneLine(const std::string& id) {
  char buf[256];
  std::snprintf(buf, sizeof(buf), kSceneLine, id.c_str());
  return buf;
}

class ApiTest : public ::testing::Test {
 protected:
  ApiTest() : client_(redis_.options()), queue_(client_, queue::QueueOptions{}, clock_) {}
  ~ApiTest() override { exporter_.reset(); }

  void StartExporter(std::vector<std::string> extra = {}) {
    port_ = FreePort();
    std::vector<std::string> argv = {SCENEFARM_EXPORTER_BIN,
                                     "--listen",
                                     "127.0.0.1:" + std::to_string(port_),
                                     "--redis-url",
                                     redis_.url(),
                                     "--timeout-seconds",
                                     "2",
                                     "--gpu-source",
                                     "none"};
    if (std::find(extra.begin(), extra.end(), "--comfyui-url") == extra.end())
      argv.insert(argv.end(), {"--comfyui-url", ""});
    argv.insert(argv.end(), extra.begin(), extra.end());
    exporter_ = std::make_unique<Process>(argv, dir_.path() / "exporter.log");
    ASSERT_TRUE(WaitFor([&] { return PortOpen(port_); })) << exporter_->Log();
  }
  // A web config with one user (bcrypt, low cost: a test), actions on.
  void StartWithUsers(std::vector<std::string> extra = {"--web.enable-actions"}) {
    char salt[64];
    ASSERT_NE(crypt_gensalt_rn("$2b$", 4, nullptr, 0, salt, sizeof(salt)), nullptr);
    crypt_data data{};
    const std::string hash = crypt_r("s3cret", salt, &data);
    std::ofstream(dir_.path() / "web.yml") << "basic_auth_users:\n  alice: '" << hash << "'\n";
    extra.insert(extra.end(), {"--web-config", (dir_.path() / "web.yml").string()});
    StartExporter(extra);
  }
  Reply Get(const std::string& target, const std::vector<std::string>& headers = {}) {
    return Http(port_, "GET", target, "", headers);
  }
  // A POST as the page would send it: alice, same origin, the CSRF token.
  Reply Act(const std::string& target, const std::string& body = "") {
    const std::string token = Get("/api/csrf", {Basic("alice", "s3cret")}).j.value("token", "");
    return Http(port_, "POST", target, body,
                {Basic("alice", "s3cret"), "Origin: http://127.0.0.1:" + std::to_string(port_),
                 "X-Scenefarm-CSRF: " + token});
  }
  int64_t Pending() { return queue_.GetStatus(std::chrono::seconds(30))->depth.pending; }

  RedisServer redis_;
  SystemClock clock_;
  TempDir dir_;
  redis::Client client_;
  queue::Queue queue_;
  std::unique_ptr<Process> exporter_;
  int port_ = 0;
};

TEST_F(ApiTest, QueuesScenesAndOneSceneHaveTheCliShapes) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a"), MakeScene("b"), MakeScene("c", "other")}).ok());
  auto s = queue_.Lease("w1", std::chrono::seconds(30));
  ASSERT_TRUE(s.ok() && s->has_value());
  ASSERT_TRUE(queue_.Ack(**s, "w1", json{{"frames", 1}}).ok());
  auto d = queue_.Lease("w1", std::chrono::seconds(30));
  ASSERT_TRUE(d.ok() && d->has_value());
  ASSERT_EQ(*queue_.Fail(**d, "w1", "boom", true, std::chrono::seconds(0)), "dead");
  ASSERT_TRUE(*queue_.Pause("cli:test"));
  StartExporter();

  Reply q = Get("/api/queues");
  ASSERT_EQ(q.status, 200) << q.body;
  EXPECT_EQ(q.headers["content-type"], "application/json");
  ASSERT_EQ(q.j["queues"].size(), 1u) << q.body;
  const json& st = q.j["queues"][0];
  EXPECT_EQ(st["queue"], "scenes");
  EXPECT_EQ(st["depth"]["pending"], 1);
  EXPECT_EQ(st["depth"]["dead"], 1);
  EXPECT_EQ(st["outcomes"]["succeeded"], 1);
  EXPECT_EQ(st["paused"], true);
  EXPECT_EQ(st["paused_by"], "cli:test");
  EXPECT_EQ(st["last_hour"]["succeeded"], 1);
  EXPECT_EQ(st["last_hour"]["failed"], 1);
  EXPECT_EQ(st["last_hour"]["dead_lettered"], 1);

  Reply dead = Get("/api/queues/scenes/scenes?state=dead");
  ASSERT_EQ(dead.status, 200) << dead.body;
  EXPECT_EQ(dead.j["queue"], "scenes");
  EXPECT_EQ(dead.j["state"], "dead");
  EXPECT_EQ(dead.j["total"], 1);
  ASSERT_EQ(dead.j["scenes"].size(), 1u);
  EXPECT_EQ(dead.j["scenes"][0]["id"], "b");
  EXPECT_EQ(dead.j["scenes"][0]["reason"], "boom");
  EXPECT_EQ(dead.j["scenes"][0]["attempts"], 1);
  EXPECT_FALSE(dead.j["scenes"][0].contains("history"));
  Reply done = Get("/api/queues/scenes/scenes?state=done");
  ASSERT_EQ(done.j["scenes"].size(), 1u) << done.body;
  EXPECT_EQ(done.j["scenes"][0]["id"], "a");
  EXPECT_EQ(done.j["scenes"][0]["state"], "succeeded");

  Reply one = Get("/api/scenes/a");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(one.j["id"], "a");
  EXPECT_EQ(one.j["state"], "succeeded");
  EXPECT_EQ(one.j["result"]["frames"], 1);
  EXPECT_EQ(one.j["doc"]["workflow"]["1"]["class_type"], "EmptyImage");
  ASSERT_GE(one.j["history"].size(), 3u);
  EXPECT_EQ(one.j["history"][0]["event"], "enqueued");
  EXPECT_EQ(one.j["history"].back()["event"], "succeeded");
  EXPECT_EQ(Get("/api/scenes/a?queue=scenes").j, one.j);

  // The queue collector says the same: scenefarm_queue_paused 1, then 0 once resumed.
  const std::string series = "\nscenefarm_queue_paused{queue=\"scenes\"} ";
  EXPECT_NE(("\n" + Get("/metrics").body).find(series + "1"), std::string::npos);
  ASSERT_TRUE(*queue_.Resume("cli:test"));
  EXPECT_NE(("\n" + Get("/metrics").body).find(series + "0"), std::string::npos);
  EXPECT_EQ(Get("/api/queues").j["queues"][0]["paused"], false);
}

TEST_F(ApiTest, PagingAndSearchAreBoundedAndCounted) {
  std::vector<Scene> scenes;
  for (const char* id : {"s1", "s2", "s3", "s4", "s5"})
    scenes.push_back(MakeScene(id, "alpha"));
  scenes.push_back(MakeScene("t1", "beta"));
  ASSERT_TRUE(queue_.Enqueue(scenes).ok());
  StartExporter();
  auto ids = [](const Reply& r) {
    std::vector<std::string> out;
    for (const auto& s : r.j["scenes"])
      out.push_back(s["id"]);
    return out;
  };
  Reply page = Get("/api/queues/scenes/scenes?state=pending&limit=2&offset=2");
  ASSERT_EQ(page.status, 200) << page.body;
  EXPECT_EQ(page.j["total"], 6);
  EXPECT_EQ(page.j["limit"], 2);
  EXPECT_EQ(page.j["offset"], 2);
  EXPECT_EQ(ids(page), (std::vector<std::string>{"s3", "s4"}));
  Reply run = Get("/api/queues/scenes/scenes?state=pending&run=beta");
  EXPECT_EQ(run.j["total"], 1);
  EXPECT_EQ(ids(run), (std::vector<std::string>{"t1"}));
  Reply by_id = Get("/api/queues/scenes/scenes?state=pending&q=s5");
  EXPECT_EQ(ids(by_id), (std::vector<std::string>{"s5"}));
  Reply by_run = Get("/api/queues/scenes/scenes?state=pending&q=alph&limit=3&offset=3");
  EXPECT_EQ(by_run.j["total"], 5);
  EXPECT_EQ(ids(by_run), (std::vector<std::string>{"s4", "s5"}));
  EXPECT_EQ(Get("/api/queues/scenes/scenes?state=pending&q=nomatch").j["total"], 0);
  // Bad parameters name themselves.
  Reply bad_state = Get("/api/queues/scenes/scenes?state=finished");
  EXPECT_EQ(bad_state.status, 400);
  EXPECT_NE(bad_state.j["error"].get<std::string>().find("state"), std::string::npos);
  Reply bad_limit = Get("/api/queues/scenes/scenes?limit=100000");
  EXPECT_EQ(bad_limit.status, 400);
  EXPECT_NE(bad_limit.j["error"].get<std::string>().find("limit"), std::string::npos);
  EXPECT_EQ(Get("/api/queues/scenes/scenes?offset=-1").status, 400);
}

// The event stream is read in chunks (5,000 entries per command): what lies past the first
// chunk is still found.
TEST_F(ApiTest, EventScansReadPastTheFirstChunk) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("first", "early")}).ok());
  auto s = queue_.Lease("w1", std::chrono::seconds(30));
  ASSERT_TRUE(s.ok() && s->has_value());
  ASSERT_TRUE(queue_.Ack(**s, "w1", json::object()).ok());
  std::vector<Scene> bulk;
  for (int i = 0; i < 6000; ++i)
    bulk.push_back(MakeScene("b" + std::to_string(i), "bulk"));
  ASSERT_TRUE(queue_.Enqueue(bulk).ok());
  StartExporter();
  Reply done = Get("/api/queues/scenes/scenes?state=done");
  ASSERT_EQ(done.status, 200) << done.body;
  ASSERT_EQ(done.j["scenes"].size(), 1u) << done.body;
  EXPECT_EQ(done.j["scenes"][0]["id"], "first");
  EXPECT_EQ(Get("/api/queues").j["queues"][0]["last_hour"]["succeeded"], 1);
  Reply runs = Get("/api/runs");
  ASSERT_EQ(runs.j["runs"].size(), 2u) << runs.body;
  EXPECT_EQ(runs.j["runs"][1]["run"], "early");
  EXPECT_EQ(runs.j["runs"][1]["finished"], true);
  Reply early = Get("/api/runs/early");
  ASSERT_EQ(early.j["scenes"].size(), 1u) << early.body;
  EXPECT_EQ(early.j["scenes"][0]["state"], "succeeded");
  EXPECT_EQ(Get("/api/queues/scenes/scenes?limit=1&offset=5999").j["scenes"][0]["id"], "b5999");
}

TEST_F(ApiTest, RunsWorkersAndComfyUi) {
  ASSERT_TRUE(
      queue_.Enqueue({MakeScene("r1"), MakeScene("r2"), MakeScene("r3"), MakeScene("x1", "other")})
          .ok());
  auto s = queue_.Lease("w1", std::chrono::seconds(30));
  ASSERT_TRUE(s.ok() && s->has_value());
  ASSERT_TRUE(queue_.Ack(**s, "w1", json::object()).ok());
  auto held = queue_.Lease("w1", std::chrono::seconds(30));
  ASSERT_TRUE(held.ok() && held->has_value());
  ASSERT_TRUE(queue_.Heartbeat("w1", std::chrono::seconds(30), {**held}).ok());
  ASSERT_TRUE(client_
                  .Command({"HSET", queue::WorkerKey("w1"), "busy", "1", "scene", (*held)->id,
                            "host", "h1", "queues", R"(["scenes"])", "paused_queues", "[]"})
                  .ok());
  // Nothing listens on this port: the collector sees it down at the first scrape.
  const int dead_port = FreePort();
  StartExporter({"--comfyui-url", "http://127.0.0.1:" + std::to_string(dead_port)});

  Reply runs = Get("/api/runs");
  ASSERT_EQ(runs.status, 200) << runs.body;
  ASSERT_EQ(runs.j["runs"].size(), 2u) << runs.body;
  const json& story = runs.j["runs"][1];
  EXPECT_EQ(story["run"], "story");
  EXPECT_EQ(story["total"], 3);
  EXPECT_EQ(story["succeeded"], 1);
  EXPECT_EQ(story["leased"], 1);
  EXPECT_EQ(story["pending"], 1);
  EXPECT_EQ(story["delayed"], 0);
  EXPECT_EQ(story["finished"], false);
  Reply run = Get("/api/runs/story?queue=scenes");
  ASSERT_EQ(run.status, 200) << run.body;
  EXPECT_EQ(run.j["total"], 3);
  std::map<std::string, std::string> states;
  for (const auto& sc : run.j["scenes"])
    states[sc["id"]] = sc["state"];
  EXPECT_EQ(states, (std::map<std::string, std::string>{
                        {"r1", "succeeded"}, {"r2", "leased"}, {"r3", "pending"}}));
  EXPECT_EQ(Get("/api/runs/nope").status, 404);

  Reply workers = Get("/api/workers");
  ASSERT_EQ(workers.status, 200) << workers.body;
  ASSERT_EQ(workers.j["workers"].size(), 1u);
  const json& w = workers.j["workers"][0];
  EXPECT_EQ(w["id"], "w1");
  EXPECT_EQ(w["state"], "busy");
  EXPECT_EQ(w["scene"], "r2");
  EXPECT_EQ(w["queues"], json::array({"scenes"}));
  EXPECT_EQ(w["scenes"], json::array({"r2"}));
  EXPECT_TRUE(w["heartbeat_age_seconds"].is_number());

  Reply before = Get("/api/comfyui");
  ASSERT_EQ(before.status, 200);
  ASSERT_EQ(before.j["instances"].size(), 1u);
  ASSERT_EQ(Get("/metrics").status, 200);  // a scrape: the collector probes
  Reply after = Get("/api/comfyui");
  ASSERT_EQ(after.j["instances"].size(), 1u) << after.body;
  EXPECT_EQ(after.j["instances"][0]["url"], "http://127.0.0.1:" + std::to_string(dead_port));
  EXPECT_EQ(after.j["instances"][0]["up"], false);
  EXPECT_GT(after.j["seen_at_ms"].get<int64_t>(), 0);
}

TEST_F(ApiTest, UnknownThingsAre404WrongMethodsAre405) {
  StartExporter();
  EXPECT_EQ(Get("/api/scenes/nope").status, 404);
  Reply q = Get("/api/scenes/a?queue=nosuchqueue");
  EXPECT_EQ(q.status, 404);
  EXPECT_NE(q.j["error"].get<std::string>().find("nosuchqueue"), std::string::npos);
  EXPECT_EQ(Get("/api/queues/nosuchqueue/scenes").status, 404);
  EXPECT_EQ(Get("/api/queues/bad%2Fname/scenes").status, 404);
  EXPECT_EQ(Get("/api/nothing").status, 404);
  Reply m = Http(port_, "POST", "/api/queues", "");
  EXPECT_EQ(m.status, 405);
  EXPECT_EQ(m.headers["allow"], "GET");
  EXPECT_EQ(Get("/api/scenes").status, 405);
  EXPECT_EQ(Http(port_, "DELETE", "/api/scenes/a").status, 405);
  EXPECT_EQ(Get("/api/queues/scenes/pause").status, 405);
}

TEST_F(ApiTest, ActionsAreRefusedUnlessEnabledAuthenticatedAndSameOrigin) {
  ASSERT_TRUE(queue_.Enqueue({MakeScene("a")}).ok());
  // Actions off (the default).
  StartExporter();
  Reply off = Http(port_, "POST", "/api/queues/scenes/pause");
  EXPECT_EQ(off.status, 403);
  EXPECT_EQ(off.j["error"], "actions are disabled (start the exporter with --web.enable-actions)");
  EXPECT_EQ(Get("/api/csrf").j["actions_enabled"], false);
  // On, but no users in a web config.
  exporter_.reset();
  StartExporter({"--web.enable-actions"});
  Reply nouser = Http(port_, "POST", "/api/queues/scenes/pause");
  EXPECT_EQ(nouser.status, 403);
  EXPECT_EQ(nouser.j["error"], "actions need basic_auth_users in the web config");
  // The pages ask /api/csrf whether to show buttons: not where every click would be refused.
  EXPECT_EQ(Get("/api/csrf").j["actions_enabled"], false);
  // On, with users.
  exporter_.reset();
  StartWithUsers();
  const std::string auth = Basic("alice", "s3cret");
  EXPECT_EQ(Http(port_, "POST", "/api/queues/scenes/pause").status, 401);
  EXPECT_EQ(Http(port_, "POST", "/api/queues/scenes/pause", "", {Basic("alice", "no")}).status,
            401);
  const std::string token = Get("/api/csrf", {auth}).j.value("token", "");
  ASSERT_EQ(token.size(), 64u);
  EXPECT_EQ(Get("/api/csrf", {auth}).j["actions_enabled"], true);
  Reply notoken = Http(port_, "POST", "/api/queues/scenes/pause", "", {auth});
  EXPECT_EQ(notoken.status, 403);
  EXPECT_NE(notoken.j["error"].get<std::string>().find("X-Scenefarm-CSRF"), std::string::npos);
  std::string wrong = token;
  wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
  EXPECT_EQ(
      Http(port_, "POST", "/api/queues/scenes/pause", "", {auth, "X-Scenefarm-CSRF: " + wrong})
          .status,
      403);
  Reply cross = Http(port_, "POST", "/api/queues/scenes/pause", "",
                     {auth, "X-Scenefarm-CSRF: " + token, "Origin: http://evil.example"});
  EXPECT_EQ(cross.status, 403);
  EXPECT_NE(cross.j["error"].get<std::string>().find("cross-origin"), std::string::npos);
  EXPECT_EQ(Http(port_, "POST", "/api/queues/scenes/pause", "",
                 {auth, "X-Scenefarm-CSRF: " + token, "Referer: http://evil.example/ui/"})
                .status,
            403);
  EXPECT_EQ(Http(port_, "POST", "/api/scenes/a/cancel", "",
                 {auth, "X-Scenefarm-CSRF: " + token,
                  "Origin: https://127.0.0.1:" + std::to_string(port_)})
                .status,
            403);  // the wrong scheme is another origin
  EXPECT_FALSE(*queue_.IsPaused());
  EXPECT_EQ(queue_.Show("a")->state, "pending");
  // Same origin, the token: allowed, and recorded with who.
  Reply ok = Http(port_, "POST", "/api/queues/scenes/pause", "",
                  {auth, "X-Scenefarm-CSRF: " + token,
                   "Referer: http://127.0.0.1:" + std::to_string(port_) + "/ui/"});
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.j["paused"], true);
  EXPECT_EQ(ok.j["by"], "api:alice");
  EXPECT_TRUE(*queue_.IsPaused());
  EXPECT_EQ(queue_.GetStatus(std::chrono::seconds(30))->paused_by, "api:alice");
}

TEST_F(ApiTest, AllowedActionsRecordWhoDidThem) {
  queue::QueueOptions qo;
  qo.default_retry_budget = 0;
  queue::Queue q(client_, qo, clock_);
  ASSERT_TRUE(q.Enqueue({MakeScene("dead1"), MakeScene("old")}).ok());
  for (int i = 0; i < 2; ++i) {
    auto s = q.Lease("w1", std::chrono::seconds(30));
    ASSERT_TRUE(s.ok() && s->has_value());
    ASSERT_EQ(*q.Fail(**s, "w1", "boom", true, std::chrono::seconds(0)), "dead");
  }
  ASSERT_TRUE(q.Enqueue({MakeScene("c1")}).ok());
  StartWithUsers();
  Reply retry = Act("/api/scenes/dead1/retry");
  ASSERT_EQ(retry.status, 200) << retry.body;
  EXPECT_EQ(q.Show("dead1")->state, "pending");
  EXPECT_EQ(q.Show("dead1")->history.back()["by"], "api:alice");
  EXPECT_EQ(Act("/api/scenes/dead1/retry").status, 409);  // not dead any more
  EXPECT_EQ(Act("/api/scenes/nope/retry").status, 404);
  Reply cancel = Act("/api/scenes/c1/cancel");
  ASSERT_EQ(cancel.status, 200) << cancel.body;
  EXPECT_EQ(cancel.j["was"], "pending");
  EXPECT_EQ(q.Show("c1")->state, "cancelled");
  EXPECT_EQ(q.Show("c1")->history.back()["by"], "api:alice");
  Reply purge = Act("/api/queues/scenes/purge?older_than=0s");
  ASSERT_EQ(purge.status, 200) << purge.body;
  EXPECT_EQ(purge.j["purged"], json::array({"old"}));
  EXPECT_FALSE(q.Show("old").ok());
  EXPECT_EQ(Act("/api/queues/scenes/purge?older_than=soon").status, 400);
  ASSERT_EQ(Act("/api/queues/scenes/pause").status, 200);
  Reply resume = Act("/api/queues/scenes/resume");
  ASSERT_EQ(resume.status, 200);
  EXPECT_EQ(resume.j["changed"], true);
  EXPECT_FALSE(*q.IsPaused());
  EXPECT_EQ(Act("/api/queues/nosuch/pause").status, 404);
}

TEST_F(ApiTest, EnqueueValidatesLikeTheCliAndIsAllOrNothing) {
  StartWithUsers(
      {"--web.enable-actions", "--max-scene-bytes", "400", "--web.max-body-bytes", "4000"});
  Reply lines = Act("/api/scenes?run=story", SceneLine("a") + "\n" + SceneLine("b") + "\n");
  ASSERT_EQ(lines.status, 200) << lines.body;
  EXPECT_EQ(lines.j["enqueued"], json::array({"a", "b"}));
  EXPECT_EQ(queue_.Show("a")->run, "story");
  EXPECT_EQ(queue_.Show("a")->history.at(0)["event"], "enqueued");
  EXPECT_EQ(queue_.Show("a")->history.at(0)["by"], "api:alice");
  Reply array = Act("/api/scenes", "[" + SceneLine("c") + "," + SceneLine("a") + "]");
  ASSERT_EQ(array.status, 200) << array.body;
  EXPECT_EQ(array.j["enqueued"], json::array({"c"}));
  EXPECT_EQ(array.j["existing"], json::array({"a"}));
  EXPECT_EQ(Act("/api/scenes", SceneLine("d")).j["enqueued"], json::array({"d"}));
  ASSERT_EQ(Pending(), 4);

  const std::string save =
      R"({"id": "p", "workflow": {"1": {"class_type": "EmptyImage", "inputs": {}}, )"
      R"("2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": )";
  struct Case {
    std::string body;
    int status;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {SceneLine("ok1") + "\n{not json\n", 400, "line 2: not valid JSON"},
      {"[" + SceneLine("ok1") + R"(, {"workflow": 5}])", 400, "element 1"},
      {SceneLine("ok1") + "\n" + save + R"("../../etc/x"}}}})" + "\n", 400,
       "node '2' filename_prefix"},
      {SceneLine("ok1") + "\n" + R"({"id": "../x", "workflow": {"1": {"class_type": "X"}}})", 400,
       "'id'"},
      {SceneLine("ok1") + "\n" + R"({"id": "big", "metadata": {"pad": ")" + std::string(500, 'p') +
           R"("}, "workflow": {"1": {"class_type": "X"}}})",
       413, "line 2"},
      {std::string(5000, ' ') + SceneLine("ok1"), 413, "--web.max-body-bytes"},
      {"", 400, "no scene"},
  };
  for (const auto& c : cases) {
    Reply r = Act("/api/scenes", c.body);
    EXPECT_EQ(r.status, c.status) << c.body.substr(0, 200) << " -> " << r.body;
    const std::string error = r.j.is_object() ? r.j.value("error", "") : "";
    EXPECT_NE(error.find(c.needle), std::string::npos) << error;
  }
  EXPECT_EQ(Pending(), 4);  // nothing of the refused bodies
  EXPECT_FALSE(queue_.Show("ok1").ok());
  Reply bad_run = Act("/api/scenes?run=../x", SceneLine("e"));
  EXPECT_EQ(bad_run.status, 400);
  EXPECT_NE(bad_run.j["error"].get<std::string>().find("run"), std::string::npos);
  EXPECT_EQ(Pending(), 4);
}

// A queue script's refusal is the operator's to mend (500, its message), not "Redis did not
// answer" (503, which a client retries): here an sf:doc_storage that is neither key nor hash.
TEST_F(ApiTest, AQueueScriptsRefusalIsA500WithItsMessageNotA503) {
  StartWithUsers({"--web.enable-actions"});
  ASSERT_TRUE(client_.Command({"SET", "sf:doc_storage", "bogus"}).ok());
  Reply r = Act("/api/scenes", SceneLine("a"));
  EXPECT_EQ(r.status, 500) << r.body;
  const std::string error = r.j.is_object() ? r.j.value("error", "") : "";
  EXPECT_NE(error.find("sf:doc_storage"), std::string::npos) << error;
  EXPECT_EQ(Pending(), 0);
  ASSERT_TRUE(client_.Command({"SET", "sf:doc_storage", "key"}).ok());
  EXPECT_EQ(Act("/api/scenes", SceneLine("a")).status, 200);
  EXPECT_EQ(Pending(), 1);
}

}  // namespace
}  // namespace scenefarm::testing
