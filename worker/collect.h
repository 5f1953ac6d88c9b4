// Collecting a scene's frames from ComfyUI's output directory: safe paths, the done marker
// (inotify), the stability window of the forced copy, hard links, and PNG completeness.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "scenefarm/status.h"

namespace scenefarm::worker::collect {

namespace fs = std::filesystem;

// dir/subfolder/filename, refusing (kInvalidArgument) any result outside dir: absolute parts,
// "..", or a symlink that leads out.
Result<fs::path> SafeJoin(const fs::path& dir, const std::string& subfolder,
                          const std::string& filename);

// Waits for `path` to appear, woken by inotify on its directory (created when missing); also
// stats it every 250 ms, for filesystems whose changes inotify does not see (NFS, SMB). Returns
// true once it exists; false after timeout or when `stop` is set.
bool WaitForFile(const fs::path& path, std::chrono::milliseconds timeout,
                 const std::atomic<bool>& stop);

// Waits until every file keeps its size and mtime for one window; after `retries` windows in
// which something still changed it gives up. Returns true when stable; *windows = windows used.
bool WaitStable(const std::vector<fs::path>& files, std::chrono::milliseconds window, int retries,
                const std::atomic<bool>& stop, int* windows);

// Hard link where the filesystem allows, else a copy (through a temporary name). Replaces `to`.
Status LinkOrCopy(const fs::path& from, const fs::path& to);

// A PNG that ends with its IEND chunk (a truncated write does not).
bool PngComplete(const fs::path& file);
bool PngCompleteBytes(const std::string& bytes);

// Files "<name>_<5 digits>_.<ext>" in dir (SaveImage's names for prefix "<subfolder>/<name>").
std::vector<fs::path> FilesForPrefix(const fs::path& dir, const std::string& name);

// Removes "<name>.done.tmp" in dir (the done marker's temporary, left by a producer that died
// between write and rename); another attempt's ("<name>0.done.tmp") is not touched.
int RemoveOrphanedMarkerTemps(const fs::path& dir, const std::string& name);

// One file ComfyUI reported for a prompt, and what it is.
struct OutputFile {
  std::string filename, subfolder, type;  // type: output | temp | input
  std::string kind;                       // image | video | audio
};
// A file's kind by its extension: "video" (mp4, webm, mkv, mov, avi, gif), "audio" (flac, mp3,
// wav, ogg, opus, m4a, aac), else "image".
std::string KindOf(const std::string& filename);
// Every file a /history entry's outputs report, in node-id order, whatever the output key:
// `images` (a video or animation when the node reports "animated": [true], as SaveVideo,
// SaveWEBM and SaveAnimatedWEBP do), `gifs` (VideoHelperSuite's videos: filename, subfolder,
// type, format) and `audio`. The same file reported twice counts once; other keys are not
// guessed at.
std::vector<OutputFile> ReportedOutputs(const nlohmann::json& history_entry);

// A done marker as scenefarm's nodes write it: {"filename_prefix", "files": [names relative to
// the marker's folder], "written_at"}.
struct Marker {
  std::set<std::string> files;  // the listed names
};
// Parses a marker's bytes; kInvalidArgument when it is not such a document or a name is not a
// plain file name.
Result<Marker> ParseMarker(const std::string& bytes);

}  // namespace scenefarm::worker::collect
