// scenefarm-comfyui-test-server: the ComfyUI stand-in as a process, for the demo and for tests
// that kill and restart it. Prints "listening http://HOST:PORT" once ready (and writes the port
// to --port-file), then serves until SIGTERM/SIGINT.
#include <CLI/CLI.hpp>

#include <csignal>
#include <fstream>
#include <iostream>

#include "scenefarm/log.h"
#include "server.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void OnSignal(int) {
  g_stop = 1;
}
}  // namespace

int main(int argc, char** argv) {
  scenefarm::testing::comfy::ServerOptions options;
  std::string port_file;
  std::string base_dir = "comfyui-test-server";
  int64_t vram_mb = options.vram_total_bytes >> 20;
  int64_t model_mb = options.model_bytes >> 20;
  CLI::App app{"ComfyUI test server (tests and demo only)"};
  app.add_option("--host", options.host, "listen address")->capture_default_str();
  app.add_option("--port", options.port, "listen port, 0 = any free port")->capture_default_str();
  app.add_option("--base-dir", base_dir, "holds output/, input/, temp/")->capture_default_str();
  app.add_option("--port-file", port_file, "write the bound port here once listening");
  bool no_marker = false;
  app.add_flag("--no-done-marker-node", no_marker,
               "run as a ComfyUI without scenefarm's custom nodes (ScenefarmSaveImage, "
               "ScenefarmVideoDoneMarker)");
  uint64_t order_seed = 0;
  auto* seed_opt = app.add_option("--output-order-seed", order_seed,
                                  "fixes the order of independent output nodes (default: a "
                                  "random seed per start, logged)");
  app.add_option("--device", options.device, "cuda or cpu")
      ->check(CLI::IsMember({"cuda", "cpu"}))
      ->capture_default_str();
  app.add_option("--gpu-count", options.gpu_count)->capture_default_str();
  app.add_option("--gpu-name", options.gpu_name)->capture_default_str();
  app.add_option("--vram-total-mb", vram_mb)->capture_default_str();
  app.add_option("--model-mb", model_mb, "VRAM the loaded model holds")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  options.base_dir = base_dir;
  options.done_marker_node = !no_marker;
  if (seed_opt->count() > 0) options.output_order_seed = order_seed;
  options.vram_total_bytes = vram_mb << 20;
  options.model_bytes = model_mb << 20;

  scenefarm::log::Init("comfyui-test-server");
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  std::signal(SIGPIPE, SIG_IGN);
  scenefarm::testing::comfy::Server server(options);
  if (auto s = server.Start(); !s.ok()) {
    std::cerr << "comfyui-test-server: " << s.ToString() << "\n";
    return 1;
  }
  if (!port_file.empty()) {
    std::ofstream tmp(port_file + ".tmp");
    tmp << server.port() << "\n";
    tmp.close();
    std::rename((port_file + ".tmp").c_str(), port_file.c_str());
  }
  std::cout << "listening " << server.url() << std::endl;
  while (!g_stop)
    pause();
  server.Stop();
  return 0;
}
