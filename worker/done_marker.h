// The worker's side of the done-marker handshake (docs/rendering.md, "The done marker"): the
// workflow rewrite that makes ComfyUI write markers that cannot come before their files,
// reading the markers and deciding whether to trust them, and the forced copy taken without a
// trusted marker.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace scenefarm::worker {

// scenefarm's custom nodes (deploy/comfyui/custom_nodes/scenefarm_done_marker).
inline constexpr char kSaveImageMarkerNode[] = "ScenefarmSaveImage";
inline constexpr char kVideoDoneMarkerNode[] = "ScenefarmVideoDoneMarker";

// Makes the workflow write done markers that cannot come before the files: every SaveImage
// becomes ScenefarmSaveImage (which saves, then writes its marker) and every VHS_VideoCombine
// gets a ScenefarmVideoDoneMarker fed by its VHS_FILENAMES output. Each marker node is given its
// marker path: "<prefix>.done" when there is one, "<prefix>.<saver id>.done" each when there are
// several. Returns those paths, relative to ComfyUI's output directory; empty when the workflow
// has no node a marker can follow.
std::vector<std::string> AddDoneMarkers(nlohmann::json& workflow, const std::string& prefix);

namespace done_marker {

namespace fs = std::filesystem;

// What a scene's markers list, as paths beside each marker.
struct Listing {
  std::set<fs::path> files;
  std::string error;  // why a marker could not be read ("" when all were)
};
Listing Read(const std::vector<fs::path>& markers);

// Why the listing cannot be trusted for collecting `files` (normalised paths): a marker that
// could not be read, a listed file that is not on disk, a file to collect that no marker lists,
// or nothing to collect. "" when it can be trusted.
std::string Untrusted(const Listing& listing, const std::vector<fs::path>& files);

// The forced copy: waits until `files` keep their size and mtime for one `window` (at most
// `retries` windows, or until `stop`), and describes it for forced-copy-debug-<ts>.txt.
struct ForcedCopy {
  bool stable = false;
  int windows = 0;
  int64_t written_ms = 0;  // when the text was made: the debug file's name
  std::string debug_text;
};
struct ForcedCopyContext {
  std::string scene, run, prompt_id, reason;
  int64_t attempt = 0;
  fs::path candidate_dir;
  double window_seconds = 0;
};
ForcedCopy WaitAndDescribe(const ForcedCopyContext& context, const std::vector<fs::path>& files,
                           std::chrono::milliseconds window, int retries,
                           const std::atomic<bool>& stop);

}  // namespace done_marker
}  // namespace scenefarm::worker
