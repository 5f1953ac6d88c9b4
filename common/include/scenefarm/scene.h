// The scene document of ../shared/DESIGN.md ("Interfaces"):
//   {"id"?: ID, "run"?: ID, "workflow": {ComfyUI API-format prompt}, "priority"?: int,
//    "retry_budget"?: int, "expected_frames"?: int, "metadata"?: object}
// ID is [A-Za-z0-9._-]{1,128} and not "." or "..". Anything else is refused with a message
// naming the field. Validated on enqueue and again on lease.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "scenefarm/status.h"

namespace scenefarm {

inline constexpr int kMinPriority = -1000;
inline constexpr int kMaxPriority = 1000;
inline constexpr int kMaxRetryBudget = 100;

struct Scene {
  std::string id;
  std::string run = "default";
  nlohmann::json workflow;
  int priority = 0;                 // higher leases first
  std::optional<int> retry_budget;  // unset: the queue's default (SceneRetryBudget)
  std::optional<int> expected_frames;
  nlohmann::json metadata = nlohmann::json::object();
};

bool IsValidId(std::string_view id);
// "s-" + 16 random hex digits.
std::string GenerateSceneId();

// kInvalidArgument naming the offending field ("scene: field 'priority' must be an integer ...").
// An absent id is generated; an absent run is "default".
Result<Scene> SceneFromJson(const nlohmann::json& doc);
Result<Scene> ParseScene(std::string_view text);
nlohmann::json SceneToJson(const Scene& scene);

// A JSON object, a JSON array of objects, or JSON lines (one object per line; blank lines
// skipped). Errors name the line or array index. default_run applies where a scene has no run.
Result<std::vector<Scene>> ParseSceneStream(std::string_view text,
                                            const std::optional<std::string>& default_run = {});

}  // namespace scenefarm
