// The scene document (docs/queue-protocol.md, "The scene document"):
//   {"id"?: ID, "run"?: ID, "workflow": {ComfyUI API-format prompt}, "priority"?: int,
//    "retry_budget"?: int, "expected_frames"?: int, "metadata"?: object}
// ID is [A-Za-z0-9._-]{1,128} and not "." or "..". Every string filename_prefix in the workflow
// must be a relative path that stays inside the output directory (see IsSafeRelativePath).
// Anything else is refused with a message naming the field. Validated on enqueue and again on
// lease.
#pragma once

#include <functional>
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
// A scene document (one JSON line, one array element or one object) over this many bytes is
// refused at enqueue; `scenefarm enqueue --max-scene-bytes` / SCENEFARM_MAX_SCENE_BYTES.
inline constexpr size_t kDefaultMaxSceneBytes = 1024 * 1024;
// Longest component of a filename_prefix, in bytes (file systems allow 255; the worker and
// ComfyUI append counters and suffixes).
inline constexpr size_t kMaxPathComponentBytes = 200;

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
// Non-empty, relative ('/' separated), no '.' or '..' component, no empty component, no
// backslash, no NUL or other control character, every component at most
// kMaxPathComponentBytes bytes and the whole at most 1024.
bool IsSafeRelativePath(std::string_view path);
// "s-" + 16 random hex digits.
std::string GenerateSceneId();

// kInvalidArgument naming the offending field ("scene: field 'priority' must be an integer ...").
// An absent id is generated; an absent run is "default".
Result<Scene> SceneFromJson(const nlohmann::json& doc);
Result<Scene> SceneFromJson(nlohmann::json&& doc);  // moves the workflow and metadata out
Result<Scene> ParseScene(std::string_view text);
nlohmann::json SceneToJson(const Scene& scene);
nlohmann::json SceneToJson(Scene&& scene);  // the same document, moving the workflow

// A JSON object, a JSON array of objects, or JSON lines (one object per line; blank lines
// skipped). Errors name the line or array index. default_run applies where a scene has no run.
// A document over max_doc_bytes (its line, its element as serialized, or the whole object) is
// refused.
// ForEachScene calls fn with each scene in order, stopping at the first error (the input's or
// fn's) and returning it; nothing is kept, so a large input costs only its text.
Status ForEachScene(std::string_view text, const std::optional<std::string>& default_run,
                    size_t max_doc_bytes, const std::function<Status(Scene&&)>& fn);
// ForEachSceneInParts: as ForEachScene, but JSON lines are cut into up to `parts` ranges of whole
// lines (at least 1 MiB each) parsed on threads of their own: fn(part, scene) is called on
// part's thread, in line order within the part; parts are in the input's order (part k's lines
// come before part k+1's). An array or a single object is one part, 0. A part stops at its first
// error, and so does every part after it (it may have handed fn some scenes by then); the input's
// first error (the earliest line's) is returned, as ForEachScene's.
using PartSceneFn = std::function<Status(size_t part, Scene&&)>;
Status ForEachSceneInParts(std::string_view text, const std::optional<std::string>& default_run,
                           size_t max_doc_bytes, size_t parts, const PartSceneFn& fn);
Result<std::vector<Scene>> ParseSceneStream(std::string_view text,
                                            const std::optional<std::string>& default_run = {},
                                            size_t max_doc_bytes = kDefaultMaxSceneBytes);

}  // namespace scenefarm
