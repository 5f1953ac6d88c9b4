// GPU readings: /system_stats device names and units, nvidia-smi's CSV, nvidia-smi run under a
// timeout, and NVML's absence, its fake, and a failed initialisation that is tried again.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>

#include "scenefarm/comfyui.h"
#include "scenefarm/gpu.h"
#include "support/process.h"

namespace scenefarm::testing {
namespace {

using json = nlohmann::json;

TEST(Gpu, SystemStatsNamesAreCleanedAndBytesBecomeMiB) {
  json stats = {{"devices",
                 {{{"name", "cuda:0 NVIDIA GeForce RTX 3090 : cudaMallocAsync"},
                   {"type", "cuda"},
                   {"index", 0},
                   {"vram_total", 25769803776LL},
                   {"vram_free", 24000LL * 1024 * 1024}}}}};
  auto r = gpu::FromSystemStats(stats);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].name, "NVIDIA GeForce RTX 3090");
  EXPECT_DOUBLE_EQ(*r[0].free_mb, 24000.0);
  EXPECT_DOUBLE_EQ(*r[0].total_mb, 24576.0);
  EXPECT_EQ(r[0].source, "system_stats");
}

TEST(Gpu, ACpuDeviceIsNamedCpu) {
  json stats = {{"devices",
                 {{{"name", "cpu"}, {"type", "cpu"}, {"index", nullptr}, {"vram_free", 1048576}}}}};
  auto r = gpu::FromSystemStats(stats);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].name, "cpu");
  EXPECT_EQ(r[0].type, "cpu");
  EXPECT_DOUBLE_EQ(*r[0].free_mb, 1.0);
  EXPECT_TRUE(gpu::FromSystemStats(json::object()).empty());
  EXPECT_TRUE(gpu::FromSystemStats(json("nonsense")).empty());
}

TEST(Gpu, NvidiaSmiCsvWithUnsupportedFields) {
  auto r = gpu::ParseNvidiaSmiCsv(
      "0, NVIDIA H100 80GB HBM3, 80000, 81559, 34, 0\n"
      "1, NVIDIA GeForce RTX 3090, 22500, 24576, [N/A], [Not Supported]\n\n");
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].name, "NVIDIA H100 80GB HBM3");
  EXPECT_DOUBLE_EQ(*r[0].free_mb, 80000);
  EXPECT_DOUBLE_EQ(*r[0].temperature_celsius, 34);
  EXPECT_DOUBLE_EQ(*r[0].utilization_ratio, 0.0);
  EXPECT_EQ(r[1].index, 1);
  EXPECT_FALSE(r[1].temperature_celsius.has_value());
  EXPECT_FALSE(r[1].utilization_ratio.has_value());
}

TEST(Gpu, AMissingNvidiaSmiIsUnavailableNotACrash) {
  auto r = gpu::ReadNvidiaSmi("/nonexistent/nvidia-smi");
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

TEST(Gpu, NvmlIsUnavailableWithoutTheDriverLibrary) {
  // CI has no NVIDIA driver; on a GPU host this reads real devices instead.
  auto r = gpu::ReadNvml();
  if (r.ok()) {
    EXPECT_FALSE(r->empty());
    EXPECT_FALSE(r->front().name.empty());
  } else {
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  }
}

// A fake nvidia-smi: a shell script with `body` (tests never need the real one).
std::string FakeSmi(const TempDir& dir, const std::string& body) {
  const auto path = dir.path() / "nvidia-smi";
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  return path.string();
}

TEST(Gpu, NvidiaSmiIsRunWithTheQueryAndParsed) {
  TempDir dir;
  const auto args = dir.path() / "args";
  const std::string smi = FakeSmi(dir, "echo \"$@\" > " + args.string() +
                                           "\necho '0, NVIDIA L40S, 40000, 46068, 61, 87, 210.25, "
                                           "GPU-1234, 550.54.15'");
  auto r = gpu::ReadNvidiaSmi(smi);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].name, "NVIDIA L40S");
  EXPECT_EQ((*r)[0].uuid, "GPU-1234");
  EXPECT_EQ((*r)[0].driver, "550.54.15");
  EXPECT_DOUBLE_EQ(*(*r)[0].power_watts, 210.25);
  EXPECT_DOUBLE_EQ(*(*r)[0].utilization_ratio, 0.87);
  EXPECT_EQ(ReadFile(args), std::string(gpu::kNvidiaSmiQuery) + " --format=csv,noheader,nounits\n");
}

TEST(Gpu, AFailingNvidiaSmiIsUnavailableWithItsExitCode) {
  TempDir dir;
  auto r = gpu::ReadNvidiaSmi(FakeSmi(dir, "echo 'NVIDIA-SMI has failed' >&2; exit 9"));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("exit 9"), std::string::npos) << r.status().ToString();
  r = gpu::ReadNvidiaSmi(FakeSmi(dir, "echo"));
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);  // no GPU listed
}

// Issue #12: nvidia-smi ran through popen with no timeout, so a hung driver stalled the scrape.
TEST(Gpu, AHungNvidiaSmiIsKilledAtItsTimeout) {
  TempDir dir;
  const auto pidfile = dir.path() / "child.pid";
  const std::string smi =
      FakeSmi(dir, "sleep 600 &\necho $! > " + pidfile.string() + "\nwait\necho '0, X, 1, 2'");
  auto r = gpu::ReadNvidiaSmi(smi, std::chrono::milliseconds(300));
  EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded) << r.status().ToString();
  // The script's own child is killed with it (the whole process group).
  std::string pid = ReadFile(pidfile);
  ASSERT_FALSE(pid.empty());
  const pid_t child = std::stoi(pid);
  EXPECT_TRUE(WaitFor([&] {
    const std::string stat = ReadFile("/proc/" + std::to_string(child) + "/stat");
    return stat.empty() || stat.find(") Z ") != std::string::npos;
  }));
}

// Issue #12: a failed nvmlInit was kept for the process's life, so a driver that came up later
// (or recovered) was never read until a restart.
TEST(Gpu, AFailedNvmlInitIsTriedAgainAtTheNextRead) {
  TempDir dir;
  // A path of its own, so no earlier test's loaded library answers for it.
  const auto lib = dir.path() / "libnvidia-ml-retry.so";
  std::filesystem::copy_file(SCENEFARM_FAKE_NVML_LIB, lib);
  setenv("FAKE_NVML_INIT_ERROR", "12", 1);  // NVML_ERROR_LIBRARY_NOT_FOUND
  auto r = gpu::ReadNvml(lib.string());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("error 12"), std::string::npos) << r.status().ToString();
  unsetenv("FAKE_NVML_INIT_ERROR");
  r = gpu::ReadNvml(lib.string());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[1].uuid, "GPU-fake-0001");
  EXPECT_EQ((*r)[0].source, "nvml");
  // Once initialised it stays: a later init error of the library changes nothing.
  setenv("FAKE_NVML_INIT_ERROR", "12", 1);
  EXPECT_TRUE(gpu::ReadNvml(lib.string()).ok());
  unsetenv("FAKE_NVML_INIT_ERROR");
}

TEST(ComfyHistory, ParsesOutputsInNodeOrderAndTheErrorMessages) {
  json entry = {
      {"outputs",
       {{"10",
         {{"images", {{{"filename", "b_00001_.png"}, {"subfolder", "s"}, {"type", "output"}}}}}},
        {"9",
         {{"images", {{{"filename", "a_00001_.png"}, {"subfolder", "s"}, {"type", "output"}}}}}}}},
      {"status",
       {{"status_str", "error"},
        {"completed", false},
        {"messages",
         json::array({json::array({"execution_start", {{"prompt_id", "p"}, {"timestamp", 1000}}}),
                      json::array({"execution_error",
                                   {{"prompt_id", "p"},
                                    {"exception_type", "torch.OutOfMemoryError"},
                                    {"exception_message", "Allocation on device"},
                                    {"timestamp", 2500}}})})}}}};
  auto h = comfyui::ParseHistoryEntry(entry);
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_FALSE(h->success);
  ASSERT_EQ(h->images.size(), 2u);
  EXPECT_EQ(h->images[0].filename, "a_00001_.png");  // node 9 before node 10
  EXPECT_EQ(h->error_type, "torch.OutOfMemoryError");
  EXPECT_EQ(h->started_ms, 1000);
  EXPECT_EQ(h->finished_ms, 2500);
  auto empty = comfyui::ParseHistoryEntry(json::object());
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->success);
  EXPECT_TRUE(empty->images.empty());
}

}  // namespace
}  // namespace scenefarm::testing
