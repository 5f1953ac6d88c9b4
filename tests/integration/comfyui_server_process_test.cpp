// The test server as a process (the demo runs it so): it reports its port, stops on SIGTERM,
// and a killed and restarted server has forgotten its history but not its files.
#include "scenefarm/http_client.h"
#include "support/comfy_harness.h"
#include "support/net.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;

int StartAndReadPort(std::unique_ptr<Process>* proc, const TempDir& dir, int port) {
  const fs::path port_file = dir.path() / "port";
  fs::remove(port_file);
  *proc = std::make_unique<Process>(
      std::vector<std::string>{SCENEFARM_TEST_SERVER_BIN, "--port", std::to_string(port),
                               "--base-dir", (dir.path() / "comfy").string(), "--port-file",
                               port_file.string()},
      dir.path() / "server.log");
  if (!WaitFor([&] { return fs::exists(port_file); })) return 0;
  return std::stoi(ReadFile(port_file));
}

TEST(ComfyProcess, KilledAndRestartedServerForgetsHistoryKeepsCounters) {
  TempDir dir;
  std::unique_ptr<Process> proc;
  const int port = StartAndReadPort(&proc, dir, 0);
  ASSERT_GT(port, 0) << proc->Log();
  http::Client client("http://127.0.0.1:" + std::to_string(port));
  json req = {{"prompt", SourceWorkflow("run/s", 2)}, {"prompt_id", "p1"}};
  ASSERT_EQ(client.Post("/prompt", req.dump())->status, 200);
  ASSERT_TRUE(WaitFor([&] { return client.Get("/history/p1")->body != "{}"; }));

  proc->Kill();
  ASSERT_FALSE(client.Get("/queue").ok());  // refused while down
  ASSERT_EQ(StartAndReadPort(&proc, dir, port), port) << proc->Log();
  EXPECT_EQ(client.Get("/history")->body, "{}");
  req["prompt"] = SourceWorkflow("run/s", 2, 0, 9);
  req["prompt_id"] = "p2";
  ASSERT_EQ(client.Post("/prompt", req.dump())->status, 200);
  ASSERT_TRUE(WaitFor([&] { return client.Get("/history/p2")->body != "{}"; }));
  EXPECT_TRUE(fs::exists(dir.path() / "comfy" / "output" / "run" / "s_00004_.png"));
  EXPECT_EQ(proc->Stop(), 0);  // clean exit on SIGTERM
}

TEST(ComfyProcess, BusyPortIsAClearError) {
  TempDir dir;
  std::unique_ptr<Process> first;
  const int port = StartAndReadPort(&first, dir, 0);
  ASSERT_GT(port, 0);
  TempDir dir2;
  Process second({SCENEFARM_TEST_SERVER_BIN, "--port", std::to_string(port), "--base-dir",
                  (dir2.path() / "comfy").string()},
                 dir2.path() / "log");
  ASSERT_TRUE(WaitFor([&] { return !second.running(); }));
  EXPECT_NE(ReadFile(dir2.path() / "log").find("cannot listen"), std::string::npos);
}

}  // namespace
}  // namespace scenefarm::testing
