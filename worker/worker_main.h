// The body of a worker executable: options from flags and SCENEFARM_*, logging, SIGTERM/SIGINT
// to a graceful drain, then Worker::Run with the renderer `make_renderer` builds.
#pragma once

#include <functional>
#include <memory>

#include "renderer.h"
#include "scenefarm/options.h"

namespace scenefarm::worker {

int WorkerMain(int argc, char** argv, const char* component,
               const std::function<std::unique_ptr<Renderer>(const WorkerOptions&)>& make_renderer);

}  // namespace scenefarm::worker
