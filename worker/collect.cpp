#include "collect.h"

#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <thread>

#include "scenefarm/handles.h"
#include "scenefarm/log.h"

namespace scenefarm::worker::collect {
namespace {

using namespace std::chrono_literals;

bool Within(const fs::path& dir, const fs::path& p) {
  const fs::path d = fs::weakly_canonical(dir);
  const fs::path c = fs::weakly_canonical(p);
  auto [dend, cit] = std::mismatch(d.begin(), d.end(), c.begin(), c.end());
  return dend == d.end();
}

bool Unsafe(const std::string& part) {
  if (part.empty()) return false;
  if (part[0] == '/' || part[0] == '\\') return true;
  for (const auto& seg : fs::path(part)) {
    if (seg == "..") return true;
  }
  return false;
}

}  // namespace

Result<fs::path> SafeJoin(const fs::path& dir, const std::string& subfolder,
                          const std::string& filename) {
  if (filename.empty() || filename.find('/') != std::string::npos || filename == "." ||
      filename == "..") {
    return Status::InvalidArgument("output file name \"" + filename + "\" is not a plain name");
  }
  if (Unsafe(subfolder)) {
    return Status::InvalidArgument("output subfolder \"" + subfolder +
                                   "\" escapes ComfyUI's output directory");
  }
  const fs::path p = dir / subfolder / filename;
  if (!Within(dir, p)) {
    return Status::InvalidArgument("output \"" + (fs::path(subfolder) / filename).string() +
                                   "\" resolves outside ComfyUI's output directory");
  }
  return p;
}

bool WaitForFile(const fs::path& path, std::chrono::milliseconds timeout,
                 const std::atomic<bool>& stop) {
  std::error_code ec;
  const fs::path dir = path.parent_path();
  fs::create_directories(dir, ec);
  const UniqueFd inotify(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  const int fd = inotify.get();
  if (fd >= 0 && inotify_add_watch(fd, dir.c_str(), IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE) < 0)
    log::Debug("inotify_watch_failed", {{"dir", dir.string()}, {"errno", errno}});
  // The watch is in place before the first look, so a rename between them is not missed.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool found = fs::exists(path, ec);
  while (!found && !stop && std::chrono::steady_clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const int slice = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(250, left.count())));
    if (fd >= 0) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, slice) > 0) {
        alignas(inotify_event) char buf[4096];
        while (::read(fd, buf, sizeof(buf)) > 0) {
        }
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(slice));
    }
    found = fs::exists(path, ec);
  }
  return found;
}

bool WaitStable(const std::vector<fs::path>& files, std::chrono::milliseconds window, int retries,
                const std::atomic<bool>& stop, int* windows) {
  auto snapshot = [&] {
    std::map<std::string, std::pair<uintmax_t, int64_t>> s;
    for (const auto& f : files) {
      std::error_code ec;
      const auto size = fs::file_size(f, ec);
      const auto mtime = fs::last_write_time(f, ec);
      s[f.string()] = {ec ? 0 : size, ec ? 0 : mtime.time_since_epoch().count()};
    }
    return s;
  };
  auto before = snapshot();
  for (int i = 1; i <= std::max(1, retries); ++i) {
    const auto until = std::chrono::steady_clock::now() + window;
    while (!stop && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::min<std::chrono::milliseconds>(window, 20ms));
    if (windows) *windows = i;
    if (stop) return false;
    auto after = snapshot();
    if (after == before) return true;
    before = std::move(after);
  }
  return false;
}

Status LinkOrCopy(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::create_directories(to.parent_path(), ec);
  fs::remove(to, ec);
  if (::link(from.c_str(), to.c_str()) == 0) return Status::Ok();
  const fs::path tmp = to.string() + ".part";
  fs::copy_file(from, tmp, fs::copy_options::overwrite_existing, ec);
  if (ec) return Status::Internal("cannot copy " + from.string() + ": " + ec.message());
  fs::rename(tmp, to, ec);
  if (ec) return Status::Internal("cannot rename " + tmp.string() + ": " + ec.message());
  return Status::Ok();
}

bool PngCompleteBytes(const std::string& b) {
  static const char kSig[] = "\x89PNG\r\n\x1a\n";
  static const char kIend[] = "\0\0\0\0IEND\xae\x42\x60\x82";
  if (b.size() < 8 + 12 || b.compare(0, 8, std::string(kSig, 8)) != 0) return false;
  return b.compare(b.size() - 12, 12, std::string(kIend, 12)) == 0;
}

bool PngComplete(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return false;
  std::string head(8, '\0');
  in.read(head.data(), 8);
  if (in.gcount() != 8) return false;
  in.seekg(-12, std::ios::end);
  std::string tail(12, '\0');
  in.read(tail.data(), 12);
  if (in.gcount() != 12) return false;
  return PngCompleteBytes(head + tail);
}

std::vector<fs::path> FilesForPrefix(const fs::path& dir, const std::string& name) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    // name_00001_.png
    if (f.size() < name.size() + 8 || f.compare(0, name.size() + 1, name + "_") != 0) continue;
    const std::string rest = f.substr(name.size() + 1);
    if (rest.size() < 7 || rest[5] != '_' || rest[6] != '.') continue;
    bool digits = true;
    for (int i = 0; i < 5; ++i)
      digits = digits && std::isdigit(static_cast<unsigned char>(rest[i]));
    if (digits && e.is_regular_file()) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

int RemoveOrphanedMarkerTemps(const fs::path& dir, const std::string& name) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string f = e.path().filename().string();
    // <name>.done.tmp, or <name>.<saver node>.done.tmp when a workflow has several markers;
    // a10's temporaries are not a1's.
    const std::string dot = name + ".", tail = ".done.tmp";
    const bool per_saver =
        f.size() > dot.size() + tail.size() && f.starts_with(dot) && f.ends_with(tail) &&
        f.substr(dot.size(), f.size() - dot.size() - tail.size()).find('.') == std::string::npos;
    if (f == name + tail || per_saver) {
      std::error_code rm;
      if (fs::remove(e.path(), rm)) ++n;
    }
  }
  return n;
}

namespace {

std::string KindByExtension(const std::string& filename, const std::string& otherwise) {
  std::string ext = fs::path(filename).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  for (const char* v : {".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif"}) {
    if (ext == v) return "video";
  }
  for (const char* a : {".flac", ".mp3", ".wav", ".ogg", ".opus", ".m4a", ".aac"}) {
    if (ext == a) return "audio";
  }
  return otherwise;
}

}  // namespace

std::string KindOf(const std::string& filename) {
  return KindByExtension(filename, "image");
}

std::vector<OutputFile> ReportedOutputs(const nlohmann::json& entry) {
  using json = nlohmann::json;
  std::vector<OutputFile> out;
  if (!entry.is_object() || !entry.contains("outputs") || !entry["outputs"].is_object()) return out;
  // Node ids are strings of numbers: numeric order keeps the graph's order.
  std::vector<std::pair<std::string, const json*>> nodes;
  for (const auto& [id, o] : entry["outputs"].items())
    nodes.emplace_back(id, &o);
  std::sort(nodes.begin(), nodes.end(), [](const auto& a, const auto& b) {
    return a.first.size() != b.first.size() ? a.first.size() < b.first.size() : a.first < b.first;
  });
  std::set<std::string> seen;
  auto add = [&](const json& f, const std::string& kind) {
    if (!f.is_object() || !f.contains("filename") || !f["filename"].is_string()) return;
    OutputFile o{f["filename"].get<std::string>(), f.value("subfolder", ""),
                 f.value("type", "output"), kind};
    if (seen.insert(o.type + "/" + o.subfolder + "/" + o.filename).second)
      out.push_back(std::move(o));
  };
  for (const auto& [id, o] : nodes) {
    if (!o->is_object()) continue;
    const json images = o->value("images", json::array());
    const json animated = o->value("animated", json::array());
    for (size_t i = 0; images.is_array() && i < images.size(); ++i) {
      // "animated": one flag for the list (ComfyUI's SavedImages), or one per file.
      bool anim = false;
      if (animated.is_array() && !animated.empty()) {
        const json& a = animated.size() == images.size() ? animated[i] : animated[0];
        anim = a.is_boolean() && a.get<bool>();
      }
      add(images[i], anim ? "video" : KindByExtension(images[i].value("filename", ""), "image"));
    }
    for (const auto& g : o->value("gifs", json::array())) {
      // VHS reports a single PNG frame as format image/png: an image, not a video.
      const bool still = g.is_object() && g.value("format", "") == "image/png";
      add(g, still ? "image" : "video");
    }
    for (const auto& a : o->value("audio", json::array()))
      add(a, "audio");
  }
  return out;
}

Result<Marker> ParseMarker(const std::string& bytes) {
  const auto j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("files") || !j["files"].is_array())
    return Status::InvalidArgument("the done marker is not a JSON object with a \"files\" list");
  Marker m;
  for (const auto& f : j["files"]) {
    if (!f.is_string() || f.get<std::string>().empty() ||
        f.get<std::string>().find('/') != std::string::npos || f == "." || f == "..")
      return Status::InvalidArgument("the done marker lists " + f.dump() +
                                     ", not a plain file name");
    m.files.insert(f.get<std::string>());
  }
  return m;
}

}  // namespace scenefarm::worker::collect
