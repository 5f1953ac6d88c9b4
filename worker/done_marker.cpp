#include "done_marker.h"

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>

#include "collect.h"
#include "scenefarm/telemetry.h"

namespace scenefarm::worker {

using json = nlohmann::json;

std::vector<std::string> AddDoneMarkers(json& workflow, const std::string& prefix) {
  long max_id = 0;
  std::vector<std::string> savers, videos;  // ids of SaveImage and VHS_VideoCombine nodes
  for (auto& [id, node] : workflow.items()) {
    try {
      max_id = std::max(max_id, std::stol(id));
    } catch (const std::exception&) {
    }
    if (!node.is_object() || !node.contains("inputs") || !node["inputs"].is_object()) continue;
    const std::string type = node.value("class_type", "");
    if (type == "SaveImage") savers.push_back(id);
    if (type == "VHS_VideoCombine") videos.push_back(id);
  }
  const size_t count = savers.size() + videos.size();
  auto marker_for = [&](const std::string& saver) {
    return count == 1 ? prefix + ".done" : prefix + "." + saver + ".done";
  };
  std::vector<std::string> markers;
  for (const auto& id : savers) {
    // The same inputs and file names; the node writes its marker after its files.
    json& node = workflow[id];
    node["class_type"] = kSaveImageMarkerNode;
    node["inputs"]["done_marker"] = marker_for(id);
    markers.push_back(marker_for(id));
  }
  long next = max_id + 1000;
  for (const auto& id : videos) {
    // Fed by Video Combine's VHS_FILENAMES output: ComfyUI runs it after Video Combine.
    workflow[std::to_string(next++)] = {
        {"class_type", kVideoDoneMarkerNode},
        {"inputs",
         {{"filenames", {id, 0}}, {"filename_prefix", prefix}, {"done_marker", marker_for(id)}}}};
    markers.push_back(marker_for(id));
  }
  return markers;
}

namespace done_marker {

Listing Read(const std::vector<fs::path>& markers) {
  Listing l;
  for (const auto& m : markers) {
    std::ifstream in(m, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    auto parsed = collect::ParseMarker(bytes.str());
    if (!parsed.ok()) {
      l.error = m.filename().string() + ": " + parsed.status().message();
      break;
    }
    for (const auto& f : parsed->files)
      l.files.insert(m.parent_path() / f);
  }
  return l;
}

std::string Untrusted(const Listing& listing, const std::vector<fs::path>& files) {
  if (!listing.error.empty()) return listing.error;
  for (const auto& l : listing.files) {
    std::error_code ec;
    if (!fs::is_regular_file(l, ec))
      return "it lists " + l.filename().string() + ", which is not on disk";
  }
  for (const auto& f : files) {
    if (!listing.files.count(f)) return "it does not list " + f.filename().string();
  }
  if (files.empty()) return "ComfyUI reported no file for it to list";
  return "";
}

ForcedCopy WaitAndDescribe(const ForcedCopyContext& c, const std::vector<fs::path>& files,
                           std::chrono::milliseconds window, int retries,
                           const std::atomic<bool>& stop) {
  ForcedCopy fc;
  fc.stable = collect::WaitStable(files, window, retries, stop, &fc.windows);
  std::optional<fs::file_time_type> last;
  for (const auto& f : files) {
    std::error_code ec;
    auto m = fs::last_write_time(f, ec);
    if (!ec && (!last || m > *last)) last = m;
  }
  fc.written_ms = telemetry::NowMs();
  std::string last_text = "none";
  if (last) {
    const auto sys = std::chrono::file_clock::to_sys(*last);
    last_text = telemetry::IsoTime(
        std::chrono::duration_cast<std::chrono::milliseconds>(sys.time_since_epoch()).count());
  }
  std::ostringstream dbg;
  dbg << "scenefarm forced copy\n"
      << "scene: " << c.scene << "\nrun: " << c.run << "\nattempt: " << c.attempt
      << "\nprompt_id: " << c.prompt_id << "\nreason: " << c.reason
      << "\ncandidate dir: " << c.candidate_dir.string() << "\nfile count: " << files.size()
      << "\nlast write time: " << last_text << "\nstable: " << (fc.stable ? "yes" : "no")
      << "\nstability windows: " << fc.windows << " x " << c.window_seconds
      << " s\nwritten at: " << telemetry::IsoTime(fc.written_ms) << "\n";
  fc.debug_text = dbg.str();
  return fc;
}

}  // namespace done_marker
}  // namespace scenefarm::worker
