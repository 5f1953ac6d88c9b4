// GPU readings: /system_stats device names and units, nvidia-smi's CSV, and NVML's absence.
#include <gtest/gtest.h>

#include "scenefarm/comfyui.h"
#include "scenefarm/gpu.h"

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
  EXPECT_FALSE(h.success);
  ASSERT_EQ(h.images.size(), 2u);
  EXPECT_EQ(h.images[0].filename, "a_00001_.png");  // node 9 before node 10
  EXPECT_EQ(h.error_type, "torch.OutOfMemoryError");
  EXPECT_EQ(h.started_ms, 1000);
  EXPECT_EQ(h.finished_ms, 2500);
  auto empty = comfyui::ParseHistoryEntry(json::object());
  EXPECT_FALSE(empty.success);
  EXPECT_TRUE(empty.images.empty());
}

}  // namespace
}  // namespace scenefarm::testing
