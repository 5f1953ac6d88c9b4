// scenefarm-test-worker: scenefarm-worker's loop with the FakeRenderer, for the crash test and
// the queue benchmark. Test and benchmark use only.
#include "fake_renderer.h"
#include "worker_main.h"

int main(int argc, char** argv) {
  return scenefarm::worker::WorkerMain(
      argc, argv, "test-worker", [](const scenefarm::WorkerOptions&) {
        return std::make_unique<scenefarm::testing::FakeRenderer>();
      });
}
