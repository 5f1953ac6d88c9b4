// Renders a scene through one ComfyUI: submits the workflow under a prompt_id derived from the
// scene and attempt, with every SaveImage prefix rewritten to a per-attempt prefix under the
// run (which also defeats ComfyUI's cache), then follows /history until the prompt ends,
// bounded by SceneMaxWaitSeconds / SceneHistoryMaxAttempts.
//
// Not yet here (issue #5): the WebSocket race, done markers, forced copy, frame collection,
// telemetry.json. Not thread-safe: the worker calls it from its loop only.
#pragma once

#include <string>

#include "renderer.h"
#include "scenefarm/http_client.h"
#include "scenefarm/options.h"

namespace scenefarm::worker {

// "<scene>-a<attempt>": a taken-over scene can find the earlier attempt in /history.
std::string PromptIdFor(const queue::LeasedScene& lease);
// "scenefarm/<run>/<scene>/a<attempt>": where this attempt's frames are written.
std::string OutputPrefixFor(const queue::LeasedScene& lease);
// Rewrites filename_prefix of every node that has one; returns how many were rewritten.
int RewriteOutputPrefixes(nlohmann::json& workflow, const std::string& prefix);

class ComfyUiRenderer : public Renderer {
 public:
  explicit ComfyUiRenderer(const WorkerOptions& options);
  Status Submit(Job& job) override;
  RenderOutcome Wait(Job& job) override;
  void Withdraw(Job& job) override;

 private:
  RenderOutcome FromHistory(const nlohmann::json& entry, const std::string& prompt_id);

  const WorkerOptions options_;
  http::Client http_;
};

}  // namespace scenefarm::worker
