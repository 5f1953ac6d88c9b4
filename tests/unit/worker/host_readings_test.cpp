// What a worker reads of its host each heartbeat: the GPU sources in their order (NVML, the
// ComfyUI's /system_stats, nvidia-smi), only the ComfyUI's GPUs, the disks of its directories,
// and a published document that stays bounded whatever the host or a foreign writer put in it.
#include <gtest/gtest.h>

#include "host_readings.h"
#include "support/process.h"

namespace scenefarm::testing {
namespace {

using json = nlohmann::json;

gpu::Reading Dev(int index, const std::string& source, const std::string& uuid = "") {
  gpu::Reading r;
  r.index = index;
  r.name = "NVIDIA RTX A6000";
  r.type = "cuda";
  r.uuid = uuid;
  r.source = source;
  r.free_mb = 1000.0 * (index + 1);
  r.total_mb = 49140;
  if (source != "system_stats") r.temperature_celsius = 60 + index;
  return r;
}

struct Calls {
  int nvml = 0, system_stats = 0, nvidia_smi = 0;
};

// Sources that fail unless given devices, counting their calls.
worker::GpuSources Fake(Calls& calls, std::vector<gpu::Reading> nvml,
                        std::vector<gpu::Reading> stats, std::vector<gpu::Reading> smi) {
  auto make = [](int& n, std::vector<gpu::Reading> devs, const char* what) {
    return [&n, devs, what]() -> Result<std::vector<gpu::Reading>> {
      ++n;
      if (devs.empty()) return Status::Unavailable(std::string(what) + " down");
      return devs;
    };
  };
  return {make(calls.nvml, nvml, "nvml"), make(calls.system_stats, stats, "stats"),
          make(calls.nvidia_smi, smi, "smi")};
}

class HostReadingsTest : public ::testing::Test {
 protected:
  HostReadingsTest() {
    options_.comfyui_url = "http://gpu-host-3:8188";
    options_.artifacts_dir = dir_.path().string();
  }
  TempDir dir_;
  WorkerOptions options_;
  FakeClock clock_;
  Calls calls_;
};

TEST_F(HostReadingsTest, NvmlFirstWhenTheHostHasTheDriver) {
  worker::HostReader reader(
      options_, Fake(calls_, {Dev(0, "nvml", "GPU-a")}, {Dev(0, "system_stats")}, {}), clock_);
  auto r = reader.Read();
  ASSERT_EQ(r.gpus.size(), 1u);
  EXPECT_EQ(r.gpus[0].source, "nvml");
  EXPECT_EQ(r.gpus[0].uuid, "GPU-a");
  EXPECT_DOUBLE_EQ(*r.gpus[0].free_bytes, 1000.0 * 1048576);
  EXPECT_DOUBLE_EQ(*r.gpus[0].temperature_celsius, 60);
  EXPECT_EQ(r.instance, "http://gpu-host-3:8188");
  EXPECT_EQ(r.at_ms, clock_.NowMs());
  EXPECT_EQ(calls_.system_stats, 0);
  EXPECT_EQ(r.gpu_error, "");
}

TEST_F(HostReadingsTest, ThenTheComfyUisSystemStatsThenNvidiaSmi) {
  gpu::Reading cpu = Dev(1, "system_stats");
  cpu.type = "cpu";
  worker::HostReader reader(
      options_, Fake(calls_, {}, {Dev(0, "system_stats"), cpu}, {Dev(0, "nvidia-smi")}), clock_);
  auto r = reader.Read();
  ASSERT_EQ(r.gpus.size(), 1u);  // the CPU device is no GPU
  EXPECT_EQ(r.gpus[0].source, "system_stats");
  EXPECT_FALSE(r.gpus[0].temperature_celsius.has_value());
  EXPECT_EQ(calls_.nvidia_smi, 0);

  worker::HostReader last(options_, Fake(calls_, {}, {}, {Dev(0, "nvidia-smi", "GPU-z")}), clock_);
  r = last.Read();
  ASSERT_EQ(r.gpus.size(), 1u);
  EXPECT_EQ(r.gpus[0].source, "nvidia-smi");

  worker::HostReader none(options_, Fake(calls_, {}, {}, {}), clock_);
  r = none.Read();
  EXPECT_TRUE(r.gpus.empty());
  EXPECT_EQ(r.gpu_error, "nvml: nvml down; system_stats: stats down; nvidia-smi: smi down");
}

TEST_F(HostReadingsTest, TheSourceSettingPicksOneSourceOrNone) {
  options_.gpu_source = "nvidia-smi";
  worker::HostReader smi(
      options_, Fake(calls_, {Dev(0, "nvml")}, {Dev(0, "system_stats")}, {Dev(0, "nvidia-smi")}),
      clock_);
  EXPECT_EQ(smi.Read().gpus.at(0).source, "nvidia-smi");
  EXPECT_EQ(calls_.nvml + calls_.system_stats, 0);
  options_.gpu_source = "none";
  worker::HostReader none(options_, Fake(calls_, {Dev(0, "nvml")}, {}, {}), clock_);
  auto r = none.Read();
  EXPECT_TRUE(r.gpus.empty());
  EXPECT_EQ(r.gpu_error, "");
  EXPECT_EQ(calls_.nvml, 0);
}

TEST_F(HostReadingsTest, OnlyTheGpusItsComfyUiUsesByIndexOrUuid) {
  options_.comfyui_gpus = "2,GPU-d";
  std::vector<gpu::Reading> host = {Dev(0, "nvml", "GPU-a"), Dev(1, "nvml", "GPU-b"),
                                    Dev(2, "nvml", "GPU-c"), Dev(3, "nvml", "GPU-d")};
  worker::HostReader reader(options_, Fake(calls_, host, {}, {}), clock_);
  auto r = reader.Read();
  ASSERT_EQ(r.gpus.size(), 2u);
  EXPECT_EQ(r.gpus[0].index, "2");
  EXPECT_EQ(r.gpus[1].uuid, "GPU-d");
  // None of the host's GPUs matches: the next source answers.
  options_.comfyui_gpus = "7";
  worker::HostReader other(options_, Fake(calls_, host, {Dev(0, "system_stats")}, {}), clock_);
  r = other.Read();
  ASSERT_EQ(r.gpus.size(), 1u);
  EXPECT_EQ(r.gpus[0].source, "system_stats");
}

TEST_F(HostReadingsTest, DisksOfTheArtifactsAndOutputDirectories) {
  options_.comfyui_output_dir = "/nonexistent/comfyui/output";
  worker::HostReader reader(options_, Fake(calls_, {}, {}, {}), clock_);
  auto r = reader.Read();
  ASSERT_EQ(r.disks.size(), 2u);
  EXPECT_EQ(r.disks[0].role, "artifacts");
  EXPECT_EQ(r.disks[0].path, dir_.path().string());
  ASSERT_TRUE(r.disks[0].free_bytes && r.disks[0].total_bytes);
  EXPECT_GT(*r.disks[0].total_bytes, 0);
  EXPECT_LE(*r.disks[0].free_bytes, *r.disks[0].total_bytes);
  EXPECT_EQ(r.disks[1].role, "comfyui_output");
  EXPECT_FALSE(r.disks[1].free_bytes.has_value());
  EXPECT_EQ(r.disks[1].error, "No such file or directory");
}

TEST(Readings, TheDocumentIsBoundedWhateverTheHost) {
  readings::HostReadings r;
  r.instance = std::string(500, 'u');
  for (int i = 0; i < 40; ++i) {
    readings::Gpu g;
    g.index = std::to_string(i);
    g.name = std::string(1000, 'n');
    g.free_bytes = 1;
    r.gpus.push_back(g);
  }
  for (int i = 0; i < 9; ++i)
    r.disks.push_back({"/d" + std::to_string(i), "artifacts", 1, 2, ""});
  const json j = r.ToJson();
  EXPECT_EQ(j["gpus"].size(), readings::kMaxGpus);
  EXPECT_EQ(j["disks"].size(), readings::kMaxDisks);
  EXPECT_EQ(j["gpus"][0]["name"].get<std::string>().size(), readings::kMaxText);
  EXPECT_EQ(j["instance"].get<std::string>().size(), readings::kMaxText);
  EXPECT_LT(j.dump().size(), 8192u);
}

TEST(Readings, AForeignDocumentIsReadDefensivelyAndBoundedAgain) {
  EXPECT_EQ(readings::HostReadings::FromJson(json("text")).status().code(),
            StatusCode::kInvalidArgument);
  json doc = {
      {"at", "yesterday"},
      {"instance", 42},
      {"gpus", json::array({"not an object",
                            {{"index", "0"}, {"free_bytes", "lots"}, {"total_bytes", 8.0}}})},
      {"disks", {{"path", "/a"}}}};
  for (int i = 0; i < 100; ++i)
    doc["gpus"].push_back({{"index", std::to_string(i)}});
  auto r = readings::HostReadings::FromJson(doc);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->at_ms, 0);
  EXPECT_EQ(r->instance, "");
  EXPECT_EQ(r->gpus.size(), readings::kMaxGpus);
  EXPECT_FALSE(r->gpus[0].free_bytes.has_value());
  EXPECT_DOUBLE_EQ(*r->gpus[0].total_bytes, 8.0);
  EXPECT_TRUE(r->disks.empty());  // "disks" was not an array
  // What is written is what is read.
  auto back = readings::HostReadings::FromJson(r->ToJson());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->ToJson(), r->ToJson());
}

}  // namespace
}  // namespace scenefarm::testing
