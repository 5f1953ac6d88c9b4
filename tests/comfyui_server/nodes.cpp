#include "nodes.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <ctime>
#include <fstream>
#include <regex>
#include <set>

#include "png.h"

namespace scenefarm::testing::comfy {
namespace fs = std::filesystem;

PromptFaults PromptFaults::FromJson(const json& j) {
  PromptFaults f;
  if (!j.is_object()) return f;
  f.error = j.value("error", "");
  f.hang_ms = j.value("hang_ms", 0);
  f.ws_drop_after_events = j.value("ws_drop_after_events", -1);
  f.slow_write_ms = j.value("slow_write_ms", 0);
  f.partial_write = j.value("partial_write", false);
  f.done_marker = j.value("done_marker", "ok");
  f.done_marker_delay_ms = j.value("done_marker_delay_ms", 0);
  f.history_delay_ms = j.value("history_delay_ms", 0);
  return f;
}

bool PathIsWithin(const fs::path& root, const fs::path& child) {
  const fs::path r = fs::absolute(root).lexically_normal();
  const fs::path c = fs::absolute(child).lexically_normal();
  auto rit = r.begin();
  auto cit = c.begin();
  for (; rit != r.end(); ++rit, ++cit) {
    if (rit->empty()) continue;  // trailing separator
    if (cit == c.end() || *rit != *cit) return false;
  }
  return true;
}

SavePath GetSaveImagePath(const std::string& filename_prefix, const fs::path& output_dir) {
  SavePath p;
  const fs::path prefix(filename_prefix);
  p.subfolder = prefix.parent_path().string();
  p.name = prefix.filename().string();
  p.folder = output_dir / p.subfolder;
  if (!PathIsWithin(output_dir, p.folder)) {
    throw NodeException("Exception",
                        "**** ERROR: Saving image outside the output folder is not allowed.\n "
                        "full_output_folder: " +
                            fs::absolute(p.folder).lexically_normal().string() +
                            "\n         output_dir: " + output_dir.string() +
                            "\n         commonpath: " + output_dir.parent_path().string());
  }
  std::error_code ec;
  fs::create_directories(p.folder, ec);
  int highest = 0;
  for (const auto& entry : fs::directory_iterator(p.folder, ec)) {
    const std::string f = entry.path().filename().string();
    // "<name>_<digits>_..." as ComfyUI's map_filename reads it.
    if (f.size() <= p.name.size() + 1 || f.compare(0, p.name.size(), p.name) != 0 ||
        f[p.name.size()] != '_') {
      continue;
    }
    const std::string rest = f.substr(p.name.size() + 1);
    const auto us = rest.find('_');
    const std::string digits = rest.substr(0, us);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    highest = std::max(highest, std::stoi(digits));
  }
  p.counter = highest + 1;
  return p;
}

namespace {

NodeInput Int(std::string name, int64_t def, int64_t min, int64_t max) {
  return {std::move(name), "INT", true, json{{"default", def}, {"min", min}, {"max", max}}, {}};
}
NodeInput Str(std::string name, std::string def) {
  return {std::move(name), "STRING", true, json{{"default", std::move(def)}}, {}};
}
NodeInput Img(std::string name) {
  return {std::move(name), "IMAGE", true, json::object(), {}};
}
NodeInput Float(std::string name, double def, double min, double max) {
  return {std::move(name), "FLOAT", true, json{{"default", def}, {"min", min}, {"max", max}}, {}};
}
NodeInput Bool(std::string name, bool def) {
  return {std::move(name), "BOOLEAN", true, json{{"default", def}}, {}};
}
NodeInput Combo(std::string name, std::vector<std::string> choices) {
  return {std::move(name), "COMBO", true, json::object(), std::move(choices)};
}
NodeInput OptionalStr(std::string name, std::string def) {
  return {std::move(name), "STRING", false, json{{"default", std::move(def)}}, {}};
}

std::string NowIso() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

ImagePtr MakeFrames(int width, int height, int count, uint64_t seed, bool solid, int color) {
  auto img = std::make_shared<Image>();
  img->width = width;
  img->height = height;
  for (int f = 0; f < count; ++f) {
    std::vector<uint8_t> px(static_cast<size_t>(width) * height * 3);
    for (int y = 0; y < height; ++y) {
      for (int x = 0; x < width; ++x) {
        uint8_t* p = &px[(static_cast<size_t>(y) * width + x) * 3];
        if (solid) {
          p[0] = static_cast<uint8_t>(color >> 16);
          p[1] = static_cast<uint8_t>(color >> 8);
          p[2] = static_cast<uint8_t>(color);
        } else {
          p[0] = static_cast<uint8_t>(x * 255 / std::max(1, width - 1) + seed);
          p[1] = static_cast<uint8_t>(y * 255 / std::max(1, height - 1) + f * 7);
          p[2] = static_cast<uint8_t>((seed >> 8) + f * 31);
        }
      }
    }
    img->frames.push_back(std::move(px));
  }
  return img;
}

void WriteFileFaulty(const fs::path& path, const std::string& bytes, NodeContext& ctx,
                     bool truncate) {
  const size_t total = truncate ? bytes.size() / 2 : bytes.size();
  const int chunks = ctx.faults().slow_write_ms > 0 ? 4 : 1;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw NodeException("OSError", "[Errno 2] cannot open " + path.string() + "\n");
  const size_t step = (total + chunks - 1) / chunks;
  for (int i = 0; i < chunks; ++i) {
    const size_t at = std::min(total, step * i);
    out.write(bytes.data() + at, static_cast<std::streamsize>(std::min(step, total - at)));
    out.flush();
    if (chunks > 1 && i + 1 < chunks) {
      ctx.Sleep(std::chrono::milliseconds(ctx.faults().slow_write_ms / chunks));
    }
  }
}

NodeResult RunSaveImage(NodeContext& ctx, const std::string&, const ResolvedInputs& in) {
  const ImagePtr images = in.images.at("images");
  const SavePath p =
      GetSaveImagePath(in.values.at("filename_prefix").get<std::string>(), ctx.output_dir());
  json results = json::array();
  int counter = p.counter;
  const std::vector<std::pair<std::string, std::string>> text = {{"prompt", ctx.prompt().dump()}};
  for (size_t i = 0; i < images->frames.size(); ++i, ++counter) {
    char name[64];
    std::snprintf(name, sizeof(name), "_%05d_.png", counter);
    const std::string file = p.name + name;
    const std::string png = EncodePng(images->width, images->height, images->frames[i], text);
    const bool last = i + 1 == images->frames.size();
    WriteFileFaulty(p.folder / file, png, ctx, last && ctx.faults().partial_write);
    results.push_back({{"filename", file}, {"subfolder", p.subfolder}, {"type", "output"}});
  }
  return {{}, json{{"images", results}}, {}};
}

void WriteMarkerAtomically(const fs::path& marker, const std::string& body) {
  const fs::path tmp = marker.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const ssize_t n = ::write(fd, body.data(), body.size());
  ::close(fd);  // no fsync, as the python node: visibility, not durability
  if (n == static_cast<ssize_t>(body.size())) ::rename(tmp.c_str(), marker.c_str());
}

// The done marker of scenefarm's nodes: `done_marker` (relative to the output directory) or
// <filename_prefix>.done, listing `files` (names relative to the marker's directory). Written
// after the files, by the node that wrote them or by one fed their names: never a wait.
// The marker's path: `done_marker` (relative to the output directory) or <prefix>.done;
// ValueError when it leaves the output directory.
fs::path MarkerPath(NodeContext& ctx, const ResolvedInputs& in, const std::string& prefix) {
  std::string rel = prefix + ".done";
  if (auto it = in.values.find("done_marker");
      it != in.values.end() && it->second.is_string() && !it->second.get<std::string>().empty()) {
    rel = it->second.get<std::string>();
  }
  const fs::path marker = (ctx.output_dir() / rel).lexically_normal();
  if (!PathIsWithin(ctx.output_dir(), marker.parent_path())) {
    throw NodeException("ValueError",
                        "done marker outside the output folder is not allowed: " + rel + "\n");
  }
  return marker;
}

void WriteDoneMarker(NodeContext& ctx, const ResolvedInputs& in, const std::string& prefix,
                     const std::vector<fs::path>& written) {
  const fs::path marker = MarkerPath(ctx, in, prefix);
  std::error_code ec;
  fs::create_directories(marker.parent_path(), ec);
  json files = json::array();
  for (const auto& f : written) {
    if (fs::absolute(f).lexically_normal().parent_path() == marker.parent_path())
      files.push_back(f.filename().string());
  }
  const std::string body =
      json{{"filename_prefix", prefix}, {"files", files}, {"written_at", NowIso()}}.dump();
  if (ctx.faults().done_marker == "never") return;
  if (ctx.faults().done_marker_delay_ms > 0) {
    ctx.Defer(std::chrono::milliseconds(ctx.faults().done_marker_delay_ms),
              [marker, body] { WriteMarkerAtomically(marker, body); });
  } else {
    WriteMarkerAtomically(marker, body);
  }
}

// ScenefarmSaveImage: SaveImage, then the marker listing exactly the files it saved.
NodeResult RunSaveImageWithMarker(NodeContext& ctx, const std::string& id,
                                  const ResolvedInputs& in) {
  const std::string prefix = in.values.at("filename_prefix").get<std::string>();
  (void)MarkerPath(ctx, in, prefix);  // refused before anything is saved, as the python node
  NodeResult r = RunSaveImage(ctx, id, in);
  std::vector<fs::path> written;
  for (const auto& img : r.ui["images"])
    written.push_back(ctx.output_dir() / img["subfolder"].get<std::string>() /
                      img["filename"].get<std::string>());
  WriteDoneMarker(ctx, in, prefix, written);
  return r;
}

// ScenefarmVideoDoneMarker: fed VHS_VideoCombine's VHS_FILENAMES (save_output, [full paths]).
NodeResult RunVideoDoneMarker(NodeContext& ctx, const std::string&, const ResolvedInputs& in) {
  const json& names = in.values.at("filenames");
  std::vector<fs::path> written;
  if (names.is_array() && names.size() == 2 && names[0] == true && names[1].is_array()) {
    for (const auto& f : names[1])
      written.emplace_back(f.get<std::string>());
  }
  WriteDoneMarker(ctx, in, in.values.at("filename_prefix").get<std::string>(), written);
  return {};
}

std::string Le32(uint32_t v) {
  return std::string{static_cast<char>(v & 0xff), static_cast<char>((v >> 8) & 0xff),
                     static_cast<char>((v >> 16) & 0xff), static_cast<char>((v >> 24) & 0xff)};
}
std::string Be32(uint32_t v) {
  return std::string{static_cast<char>((v >> 24) & 0xff), static_cast<char>((v >> 16) & 0xff),
                     static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}
std::string RawFrames(const Image& img) {
  std::string raw;
  for (const auto& f : img.frames)
    raw.append(f.begin(), f.end());
  return raw;
}

// VideoHelperSuite's VHS_VideoCombine: the workflow PNG and the video as
// <name>_<counter:05>.<ext> (VHS's naming: no trailing underscore), reported under `gifs`, and the
// VHS_FILENAMES output (save_output, [full paths]). The container holds the raw frames: a
// stand-in for ffmpeg's encoding, with the right container signature.
NodeResult RunVideoCombine(NodeContext& ctx, const std::string&, const ResolvedInputs& in) {
  const ImagePtr images = in.images.at("images");
  const bool save_output = in.values.at("save_output").get<bool>();
  const std::string format = in.values.at("format").get<std::string>();
  const fs::path& base = save_output ? ctx.output_dir() : ctx.temp_dir();
  const SavePath p = GetSaveImagePath(in.values.at("filename_prefix").get<std::string>(), base);
  int counter = 0;  // VHS: the highest "<name>_<digits>" + 1
  std::error_code ec;
  const std::regex numbered(
      std::regex_replace(p.name, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
      R"(_(\d+)\D*\..+)");
  for (const auto& e : fs::directory_iterator(p.folder, ec)) {
    std::smatch m;
    const std::string f = e.path().filename().string();
    if (std::regex_match(f, m, numbered)) counter = std::max(counter, std::stoi(m[1].str()));
  }
  ++counter;
  char stem[32];
  std::snprintf(stem, sizeof(stem), "_%05d", counter);
  const std::string png_name = p.name + stem + ".png";
  const std::vector<std::pair<std::string, std::string>> text = {{"prompt", ctx.prompt().dump()}};
  WriteFileFaulty(p.folder / png_name,
                  EncodePng(images->width, images->height, images->frames.front(), text), ctx,
                  false);
  std::string ext = "mp4", bytes;
  const std::string raw = RawFrames(*images);
  if (format == "image/gif") {
    ext = "gif";
    bytes = "GIF89a" + raw + ";";
  } else if (format == "image/webp") {
    ext = "webp";
    const std::string chunk = "VP8L" + Le32(static_cast<uint32_t>(raw.size())) + raw;
    bytes = "RIFF" + Le32(static_cast<uint32_t>(4 + chunk.size())) + "WEBP" + chunk;
  } else {
    const std::string ftyp = Be32(20) + "ftypisom" + Be32(512) + "isom";
    bytes = ftyp + Be32(static_cast<uint32_t>(8 + raw.size())) + "mdat" + raw;
  }
  const std::string video_name = p.name + stem + "." + ext;
  WriteFileFaulty(p.folder / video_name, bytes, ctx, ctx.faults().partial_write);
  json preview = {{"filename", video_name},
                  {"subfolder", p.subfolder},
                  {"type", save_output ? "output" : "temp"},
                  {"format", format},
                  {"frame_rate", in.values.at("frame_rate")},
                  {"workflow", png_name},
                  {"fullpath", (p.folder / video_name).string()}};
  const json files =
      json::array({(p.folder / png_name).string(), (p.folder / video_name).string()});
  NodeResult r;
  r.outputs = {nullptr};
  r.values = {json::array({save_output, files})};
  r.ui = {{"gifs", json::array({preview})}};
  return r;
}

// ComfyUI's SaveAnimatedWEBP: one <name>_<counter:05>_.webp holding every frame, reported
// under `images` with "animated": [true] (as SaveVideo / SaveWEBM report theirs).
NodeResult RunSaveAnimatedWebp(NodeContext& ctx, const std::string&, const ResolvedInputs& in) {
  const ImagePtr images = in.images.at("images");
  const SavePath p =
      GetSaveImagePath(in.values.at("filename_prefix").get<std::string>(), ctx.output_dir());
  char name[64];
  std::snprintf(name, sizeof(name), "_%05d_.webp", p.counter);
  const std::string file = p.name + name;
  const std::string raw = RawFrames(*images);
  const std::string chunk = "VP8L" + Le32(static_cast<uint32_t>(raw.size())) + raw;
  WriteFileFaulty(p.folder / file,
                  "RIFF" + Le32(static_cast<uint32_t>(4 + chunk.size())) + "WEBP" + chunk, ctx,
                  ctx.faults().partial_write);
  json results =
      json::array({{{"filename", file}, {"subfolder", p.subfolder}, {"type", "output"}}});
  return {
      {}, json{{"images", results}, {"animated", json::array({images->frames.size() != 1})}}, {}};
}

NodeResult RunTestSource(NodeContext& ctx, const std::string&, const ResolvedInputs& in) {
  const int frames = in.values.at("frames").get<int>();
  const int width = in.values.at("width").get<int>();
  const int height = in.values.at("height").get<int>();
  const int per_frame_ms = in.values.at("render_ms_per_frame").get<int>();
  const uint64_t seed = in.values.at("seed").get<uint64_t>();
  ctx.LoadModel();
  ctx.UseWorkingMemory(256LL * 1024 * 1024 + static_cast<int64_t>(width) * height * frames * 16);
  for (int i = 0; i < frames; ++i) {
    ctx.Sleep(std::chrono::milliseconds(per_frame_ms));
    ctx.Progress(i + 1, frames);
  }
  return {{MakeFrames(width, height, frames, seed, false, 0)}, nullptr, {}};
}

NodeResult RunEmptyImage(NodeContext&, const std::string&, const ResolvedInputs& in) {
  return {{MakeFrames(in.values.at("width").get<int>(), in.values.at("height").get<int>(),
                      in.values.at("batch_size").get<int>(), 0, true,
                      in.values.at("color").get<int>())},
          nullptr,
          {}};
}

std::map<std::string, NodeDef> BuildRegistry() {
  std::map<std::string, NodeDef> r;
  r["EmptyImage"] = {"EmptyImage",
                     "EmptyImage",
                     "image",
                     "",
                     "nodes",
                     {Int("width", 512, 1, 16384), Int("height", 512, 1, 16384),
                      Int("batch_size", 1, 1, 4096), Int("color", 0, 0, 0xFFFFFF)},
                     {"IMAGE"},
                     false,
                     &RunEmptyImage};
  r["SaveImage"] = {"SaveImage",  "Save Image",
                    "image",      "Saves the input images to your ComfyUI output directory.",
                    "nodes",      {Img("images"), Str("filename_prefix", "ComfyUI")},
                    {},           true,
                    &RunSaveImage};
  r[kTestSourceNode] = {
      kTestSourceNode,
      "Scenefarm Test Source",
      "scenefarm/testing",
      "Renders `frames` frames, taking render_ms_per_frame each, with progress.",
      "custom_nodes.scenefarm_test_source",
      {Int("frames", 24, 1, 10000), Int("width", 64, 8, 4096), Int("height", 64, 8, 4096),
       Int("render_ms_per_frame", 50, 0, 600000), Int("seed", 0, 0, 9007199254740991LL)},
      {"IMAGE"},
      false,
      &RunTestSource};
  r[kSaveImageMarkerNode] = {
      kSaveImageMarkerNode,
      "Save Image (scenefarm done marker)",
      "scenefarm",
      "SaveImage, then <done_marker> (default <filename_prefix>.done) listing the files saved.",
      "custom_nodes.scenefarm_done_marker",
      {Img("images"), Str("filename_prefix", "ComfyUI"), OptionalStr("done_marker", "")},
      {},
      true,
      &RunSaveImageWithMarker};
  r[kVideoDoneMarkerNode] = {
      kVideoDoneMarkerNode,
      "Done marker for Video Combine (scenefarm)",
      "scenefarm",
      "Writes <done_marker> (default <filename_prefix>.done) listing Video Combine's files.",
      "custom_nodes.scenefarm_done_marker",
      {{"filenames", "VHS_FILENAMES", true, json::object(), {}},
       Str("filename_prefix", "ComfyUI"),
       OptionalStr("done_marker", "")},
      {},
      true,
      &RunVideoDoneMarker};
  r["VHS_VideoCombine"] = {"VHS_VideoCombine",
                           "Video Combine 🎥🅥🅗🅢",
                           "Video Helper Suite 🎥🅥🅗🅢",
                           "",
                           "custom_nodes.ComfyUI-VideoHelperSuite",
                           {Img("images"), Float("frame_rate", 8, 1, 1000),
                            Int("loop_count", 0, 0, 100), Str("filename_prefix", "AnimateDiff"),
                            Combo("format", {"image/gif", "image/webp", "video/h264-mp4"}),
                            Bool("pingpong", false), Bool("save_output", true)},
                           {"VHS_FILENAMES"},
                           true,
                           &RunVideoCombine};
  r["SaveAnimatedWEBP"] = {
      "SaveAnimatedWEBP",
      "SaveAnimatedWEBP",
      "image/animation",
      "",
      "nodes",
      {Img("images"), Str("filename_prefix", "ComfyUI"), Float("fps", 6.0, 0.01, 1000.0),
       Bool("lossless", false), Int("quality", 80, 0, 100),
       Combo("method", {"default", "fastest", "slowest"})},
      {},
      true,
      &RunSaveAnimatedWebp};
  return r;
}

}  // namespace

bool IsScenefarmMarkerNode(const std::string& class_type) {
  return class_type == kSaveImageMarkerNode || class_type == kVideoDoneMarkerNode;
}

std::vector<std::string> OrderOutputs(std::vector<std::string> ids, uint64_t seed) {
  auto key = [seed](const std::string& id) {
    uint64_t h = 1469598103934665603ULL ^ seed;  // FNV-1a keyed with the seed
    for (const unsigned char c : id) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    h += 0x9e3779b97f4a7c15ULL;  // splitmix64's finaliser, so nearby seeds differ
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
  };
  std::sort(ids.begin(), ids.end(), [&](const std::string& a, const std::string& b) {
    const uint64_t ka = key(a), kb = key(b);
    return ka != kb ? ka < kb : a < b;
  });
  return ids;
}

uint64_t SeedForOrder(const std::vector<std::string>& ids, const std::string& first) {
  for (uint64_t seed = 1; seed <= 10000; ++seed) {
    const auto order = OrderOutputs(ids, seed);
    if (!order.empty() && order.front() == first) return seed;
  }
  return 0;
}

const std::map<std::string, NodeDef>& Registry() {
  static const std::map<std::string, NodeDef> registry = BuildRegistry();
  return registry;
}

json ObjectInfoFor(const NodeDef& def) {
  json required = json::object(), optional = json::object();
  json order = json::array(), optional_order = json::array();
  for (const auto& in : def.inputs) {
    json type = in.type == "COMBO" ? json(in.choices) : json(in.type);
    (in.required ? required : optional)[in.name] =
        in.options.empty() ? json::array({type}) : json::array({type, in.options});
    (in.required ? order : optional_order).push_back(in.name);
  }
  json input = {{"required", required}};
  json input_order = {{"required", order}};
  if (!optional.empty()) {
    input["optional"] = optional;
    input_order["optional"] = optional_order;
  }
  json outputs = def.output_types;
  return {{"input", input},
          {"input_order", input_order},
          {"output", outputs},
          {"output_is_list", std::vector<bool>(def.output_types.size(), false)},
          {"output_name", outputs},
          {"name", def.class_type},
          {"display_name", def.display_name},
          {"description", def.description},
          {"python_module", def.python_module},
          {"category", def.category},
          {"output_node", def.output_node},
          {"deprecated", false},
          {"experimental", false}};
}

json ObjectInfo() {
  json out = json::object();
  for (const auto& [name, def] : Registry())
    out[name] = ObjectInfoFor(def);
  return out;
}

}  // namespace scenefarm::testing::comfy
