// Farm state for the web pages' tests and screenshots (tests/ui/, scripts/ui-screenshots.py),
// written through the real queue protocol into a real Redis, and the artifact files a worker
// would have written for it:
//   run RUN:   RUN-ok (succeeded: N frames, a video, telemetry.json with a fallback note),
//              RUN-dead (dead-lettered: "prompt rejected"), then the run is assembled
//              (artifact-metadata.json, run-summary.txt) as the worker does;
//   run RUN-next: RUN-next-1 pending.
// A worker id "ui-fixture-worker" heartbeats once (it shows in sf:workers while live).
// Usage: scenefarm-ui-fixture REDIS_URL ARTIFACTS_DIR RUN [FRAMES [WIDTH HEIGHT [NOISE]]]
// NOISE 1: frames with per-pixel noise, which PNG compresses about as badly as a real render
// (the thumbnail benchmark, bench/ui_thumbs_bench.py); 0 (default): smooth gradients.
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "png.h"
#include "scenefarm/clock.h"
#include "scenefarm/queue.h"
#include "scenefarm/redis.h"
#include "scenefarm/telemetry.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace scenefarm;

namespace {

int Fail(const std::string& what, const Status& s) {
  std::cerr << "ui-fixture: " << what << ": " << s.ToString() << "\n";
  return 1;
}

// A gradient frame, different per index (the strip shows distinct images).
std::string Frame(int width, int height, int index, bool noise) {
  std::vector<uint8_t> rgb(static_cast<size_t>(width) * height * 3);
  uint32_t rng = 2463534242u + static_cast<uint32_t>(index);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &rgb[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>((x * 255 / std::max(1, width - 1) + index * 37) % 256);
      p[1] = static_cast<uint8_t>(y * 255 / std::max(1, height - 1));
      p[2] = static_cast<uint8_t>((index * 53) % 256);
      if (noise) {
        for (int c = 0; c < 3; ++c) {
          rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;  // xorshift32
          p[c] = static_cast<uint8_t>(p[c] ^ (rng & 0x3f));
        }
      }
    }
  }
  return testing::comfy::EncodePng(width, height, rgb, {});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: scenefarm-ui-fixture REDIS_URL ARTIFACTS_DIR RUN [FRAMES [W H [NOISE]]]\n";
    return 2;
  }
  const std::string url = argv[1], run = argv[3];
  const fs::path artifacts = argv[2];
  const int frames = argc > 4 ? std::atoi(argv[4]) : 4;
  const int width = argc > 6 ? std::atoi(argv[5]) : 64, height = argc > 6 ? std::atoi(argv[6]) : 48;
  const bool noise = argc > 7 && std::string(argv[7]) == "1";
  redis::Options ro;
  ro.url = url;
  redis::Client client(ro);
  SystemClock clock;
  queue::QueueOptions qo;
  qo.default_retry_budget = 0;
  queue::Queue q(client, qo, clock);
  const std::string worker = "ui-fixture-worker";
  const json workflow = {{"1", {{"class_type", "EmptyImage"}, {"inputs", {{"width", width}}}}},
                         {"2",
                          {{"class_type", "SaveImage"},
                           {"inputs", {{"images", {"1", 0}}, {"filename_prefix", run}}}}}};
  std::vector<Scene> scenes(3);
  scenes[0].id = run + "-ok";
  scenes[1].id = run + "-dead";
  scenes[2].id = run + "-next-1";
  for (auto& s : scenes) {
    s.run = run;
    s.workflow = workflow;
  }
  scenes[0].expected_frames = frames;
  scenes[2].run = run + "-next";
  // Enqueued one by one: the first two are leased in this order.
  for (const auto& s : {scenes[0], scenes[1]}) {
    if (auto r = q.Enqueue({s}); !r.ok()) return Fail("enqueue", r.status());
  }
  const auto lease = std::chrono::milliseconds(60000);
  auto ok = q.Lease(worker, lease);
  if (!ok.ok() || !*ok) return Fail("lease", ok.ok() ? Status::NotFound("nothing") : ok.status());
  auto dead = q.Lease(worker, lease);
  if (!dead.ok() || !*dead)
    return Fail("lease", dead.ok() ? Status::NotFound("nothing") : dead.status());
  if (auto h = q.Heartbeat(worker, lease, {**ok, **dead}); !h.ok())
    return Fail("heartbeat", h.status());

  // What the worker writes for a rendered scene.
  const fs::path scene_dir = artifacts / run / scenes[0].id;
  fs::create_directories(scene_dir);
  telemetry::SceneTelemetry t;
  t.scene_id = scenes[0].id;
  t.run = run;
  t.prompt_id = "p-" + run;
  t.worker_id = worker;
  t.attempt = (*ok)->attempt;
  t.status = "succeeded";
  t.expected_frames = frames;
  t.started_at = telemetry::IsoTime(telemetry::NowMs() - 4200);
  t.finished_at = telemetry::IsoTime(telemetry::NowMs());
  for (int i = 0; i < frames; ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "%s_%05d_.png", run.c_str(), i + 1);
    std::ofstream(scene_dir / name, std::ios::binary) << Frame(width, height, i, noise);
    t.frames.push_back(name);
    t.files.push_back({name, "image"});
  }
  t.duration_seconds = 4.2;
  t.history_attempts = 3;
  t.history_exit_reason = "success";
  t.execution_success_detected = true;
  t.execution_success_at = t.finished_at;
  t.gpu_name = "NVIDIA H200";
  t.vram_before_mb = 1024;
  t.vram_after_mb = 2048;
  t.AddNote("Forced copy after stability retries");
  t.forced_copy_triggered = true;
  t.frame_count = frames;
  json outputs = json::array();  // as the worker records them: what /view serves
  for (const auto& name : t.frames)
    outputs.push_back(
        {{"filename", name}, {"subfolder", ""}, {"type", "output"}, {"kind", "image"}});
  const json doc = t.ToJson();
  std::ofstream(scene_dir / "telemetry.json") << doc.dump(2) << "\n";
  // A forced copy leaves its debug file (the contract's rule): the run validates.
  std::ofstream(scene_dir / "forced-copy-debug-2026-01-01T00-00-00.txt")
      << "stable after 3 retries\n";
  json result = {{"prompt_id", t.prompt_id},
                 {"outputs", outputs},
                 {"frame_count", frames},
                 {"expected_frames", frames},
                 {"telemetry", doc["Telemetry"]},
                 {"fallback_reasons", telemetry::FallbackReasons(doc["Telemetry"])}};
  if (Status s = q.Ack(**ok, worker, result); !s.ok()) return Fail("ack", s);
  auto f = q.Fail(**dead, worker, "prompt rejected: node 2 has no input 'images'", true,
                  std::chrono::milliseconds(0));
  if (!f.ok()) return Fail("fail", f.status());
  if (Status s = telemetry::AssembleRun(artifacts / run, telemetry::Policy{}); !s.ok())
    return Fail("assemble", s);
  if (auto r = q.Enqueue({scenes[2]}); !r.ok()) return Fail("enqueue", r.status());
  std::cout << json{{"run", run},
                    {"succeeded", scenes[0].id},
                    {"dead", scenes[1].id},
                    {"pending", scenes[2].id},
                    {"worker", worker}}
                   .dump()
            << "\n";
  return 0;
}
