// The node set of the ComfyUI test server and ComfyUI's prompt validation
// (execution.py validate_prompt / validate_inputs, ../shared/comfyui-api.md), with the same
// error types, messages and node_errors shape.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace scenefarm::testing::comfy {

using json = nlohmann::json;

// A batch of RGB frames, ComfyUI's IMAGE.
struct Image {
  int width = 0;
  int height = 0;
  std::vector<std::vector<uint8_t>> frames;
};
using ImagePtr = std::shared_ptr<const Image>;

// An exception a node raises while executing; becomes execution_error.
struct NodeException : std::runtime_error {
  NodeException(std::string type, std::string message)
      : std::runtime_error(message), exception_type(std::move(type)) {}
  std::string exception_type;  // module-qualified, e.g. "torch.OutOfMemoryError"
};

// Thrown out of a node when the prompt was interrupted (POST /interrupt) or the server
// restarted; never caught by nodes.
struct Interrupted {};

// Per-prompt fault injection (extra_data.scenefarm_test, or /_test/faults "prompt").
struct PromptFaults {
  std::string error;               // "", "oom" or "runtime": raised by the first executed node
  int hang_ms = 0;                 // the first executed node stalls this long (interruptible)
  int ws_drop_after_events = -1;   // drop the client's socket after this many prompt events
  int slow_write_ms = 0;           // each saved file is written in 4 chunks over this long
  bool partial_write = false;      // the last saved file of the prompt is left truncated
  std::string done_marker = "ok";  // "ok" or "never"
  int done_marker_delay_ms = 0;    // the marker appears this long after the node ran
  int history_delay_ms = 0;        // gap between execution_success and the history entry
  static PromptFaults FromJson(const json& j);
};

// What a node may ask of the server while it executes (on the executor thread).
class NodeContext {
 public:
  virtual ~NodeContext() = default;
  virtual const std::filesystem::path& output_dir() const = 0;
  virtual const std::filesystem::path& temp_dir() const = 0;
  virtual const PromptFaults& faults() const = 0;
  virtual const json& prompt() const = 0;
  // Sleeps, waking early to throw Interrupted.
  virtual void Sleep(std::chrono::milliseconds d) = 0;
  virtual void Progress(int value, int max) = 0;
  // Marks the model weights as loaded (VRAM stays used until /free or an OOM).
  virtual void LoadModel() = 0;
  // VRAM held while the current node runs.
  virtual void UseWorkingMemory(int64_t bytes) = 0;
  // Runs fn on the server's timer thread after delay (a late done marker).
  virtual void Defer(std::chrono::milliseconds delay, std::function<void()> fn) = 0;
};

struct NodeInput {
  std::string name;
  std::string type;  // INT, FLOAT, STRING, BOOLEAN, IMAGE, VHS_FILENAMES, or COMBO (choices)
  bool required = true;
  json options = json::object();  // default, min, max, ...
  std::vector<std::string> choices;
};

// Inputs resolved for execution: widget values as JSON, links as the linked output.
struct ResolvedInputs {
  std::map<std::string, json> values;
  std::map<std::string, ImagePtr> images;
};

struct NodeResult {
  std::vector<ImagePtr> outputs;  // one per output slot (null for a slot that is not IMAGE)
  json ui;                        // null, or {"images": [...]} for the history/executed event
  std::vector<json> values;       // per output slot, the value of a slot that is not IMAGE
};

struct NodeDef {
  std::string class_type;
  std::string display_name;
  std::string category;
  std::string description;
  std::string python_module = "nodes";
  std::vector<NodeInput> inputs;
  std::vector<std::string> output_types;
  bool output_node = false;
  std::function<NodeResult(NodeContext&, const std::string& node_id, const ResolvedInputs&)>
      execute;
};

// scenefarm's custom nodes (deploy/comfyui/custom_nodes/scenefarm_done_marker), which the worker
// looks for in /object_info: SaveImage that writes the done marker after its files, and the
// marker node fed by VideoHelperSuite's VHS_FILENAMES output.
inline constexpr char kSaveImageMarkerNode[] = "ScenefarmSaveImage";
inline constexpr char kVideoDoneMarkerNode[] = "ScenefarmVideoDoneMarker";
// The test image source: frames, size and render time per frame are inputs.
inline constexpr char kTestSourceNode[] = "ScenefarmTestSource";

const std::map<std::string, NodeDef>& Registry();
// Whether class_type is one of scenefarm's custom nodes (absent with done_marker_node = false).
bool IsScenefarmMarkerNode(const std::string& class_type);

// The order in which the executor takes a prompt's output nodes: ComfyUI keeps them in a Python
// set of string ids, whose order follows the ids' hashes, randomised per process. Here: sorted by
// a hash of the id keyed with `seed` (one seed per server process), so the order is the same for
// the same ids within a process and differs between seeds. Tests pick a seed for the order they
// need with SeedForOrder.
std::vector<std::string> OrderOutputs(std::vector<std::string> ids, uint64_t seed);
// The first seed (from 1, at most 10000 tried) whose OrderOutputs(ids) starts with `first`;
// 0 when none does.
uint64_t SeedForOrder(const std::vector<std::string>& ids, const std::string& first);
json ObjectInfo();
json ObjectInfoFor(const NodeDef& def);

struct Validation {
  bool ok = false;
  json error;                             // null when ok
  std::vector<std::string> good_outputs;  // output node ids to execute
  json node_errors = json::object();
};
// Validates (and normalises widget values of) an API-format prompt as ComfyUI does.
Validation ValidatePrompt(json& prompt);

// ComfyUI's SaveImage naming: "<subfolder>/<name>" -> files <name>_<counter:05>_.png in
// output_dir/subfolder, counter = highest existing for that name + 1.
// Throws NodeException when the prefix escapes output_dir.
struct SavePath {
  std::filesystem::path folder;
  std::string name;
  std::string subfolder;
  int counter = 1;
};
SavePath GetSaveImagePath(const std::string& filename_prefix,
                          const std::filesystem::path& output_dir);

// True when `child` (made absolute and normalised) is `root` or inside it.
bool PathIsWithin(const std::filesystem::path& root, const std::filesystem::path& child);

}  // namespace scenefarm::testing::comfy
