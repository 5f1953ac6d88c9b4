// scenefarm-worker: renders through ComfyUI.
#include "comfyui_renderer.h"
#include "worker_main.h"

int main(int argc, char** argv) {
  using namespace scenefarm::worker;
  return WorkerMain(argc, argv, "worker", [](const scenefarm::WorkerOptions& o) {
    return std::make_unique<ComfyUiRenderer>(o);
  });
}
