// The worker's settings as flags: what is refused at start.
#include <gtest/gtest.h>

#include "scenefarm/options.h"

namespace scenefarm::testing {
namespace {

Result<WorkerOptions> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "scenefarm-worker");
  return ParseWorkerOptions(static_cast<int>(args.size()), args.data());
}

TEST(WorkerOptions, QueuesAreReadInPriorityOrder) {
  auto o = Parse({"--queue", "hi, lo"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->queues, (std::vector<std::string>{"hi", "lo"}));
}

TEST(WorkerOptions, AQueueNamedTwiceOrThatIsNoQueueNameIsAnErrorAtStart) {
  for (const char* queues : {"a,b,a", "sc{enes}", " , "}) {
    auto o = Parse({"--queue", queues});
    ASSERT_FALSE(o.ok()) << queues;
    EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(o.status().message().find("--queue"), std::string::npos) << o.status().message();
  }
}

TEST(WorkerOptions, TheComfyUiResponseCapIsASetting) {
  auto o = Parse({"--comfyui-max-response-mb", "8"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->comfyui_max_response_mb, 8);
  EXPECT_FALSE(Parse({"--comfyui-max-response-mb", "0"}).ok());
}

TEST(WorkerOptions, TheComfyUiRequestTimeoutIsASettingFromFlagOrEnvironment) {
  EXPECT_EQ(Parse({})->comfyui_request_timeout_seconds, 30);
  auto o = Parse({"--comfyui-request-timeout-seconds", "2.5"});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->comfyui_request_timeout_seconds, 2.5);
  EXPECT_FALSE(Parse({"--comfyui-request-timeout-seconds", "0"}).ok());
  ::setenv("SCENEFARM_COMFYUI_REQUEST_TIMEOUT_SECONDS", "7", 1);
  auto e = Parse({});
  ::unsetenv("SCENEFARM_COMFYUI_REQUEST_TIMEOUT_SECONDS");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(e->comfyui_request_timeout_seconds, 7);
}

}  // namespace
}  // namespace scenefarm::testing
