// Frame collection: paths that escape ComfyUI's output directory, inotify waits, the stability
// window, hard links, PNG completeness and orphaned marker temporaries.
#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "collect.h"
#include "support/process.h"

namespace scenefarm::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
namespace collect = worker::collect;

TEST(Collect, PathsThatEscapeTheOutputDirectoryAreRefused) {
  TempDir d;
  EXPECT_TRUE(collect::SafeJoin(d.path(), "scenefarm/run/s", "a_00001_.png").ok());
  for (auto [sub, name] : std::vector<std::pair<std::string, std::string>>{{"../x", "a.png"},
                                                                           {"/etc", "passwd"},
                                                                           {"a/../../b", "c.png"},
                                                                           {"", "../a.png"},
                                                                           {"", ""},
                                                                           {"ok", ".."}}) {
    auto r = collect::SafeJoin(d.path(), sub, name);
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << sub << " " << name;
  }
  // A symlink inside that leads outside.
  fs::create_directory_symlink("/tmp", d.path() / "link");
  EXPECT_EQ(collect::SafeJoin(d.path(), "link", "x.png").status().code(),
            StatusCode::kInvalidArgument);
}

TEST(Collect, WaitForFileWakesOnTheRename) {
  TempDir d;
  const fs::path marker = d.path() / "sub" / "a1.done";
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    // WaitForFile creates the directory just before it watches it: written once the wait began.
    WaitFor([&] { return fs::is_directory(marker.parent_path()); });
    std::ofstream(marker.string() + ".tmp") << "{}";
    fs::rename(marker.string() + ".tmp", marker);
  });
  EXPECT_TRUE(collect::WaitForFile(marker, 5000ms, stop));  // true: woken by the rename
  writer.join();
  EXPECT_FALSE(collect::WaitForFile(d.path() / "sub" / "never.done", 100ms, stop));
  stop = true;
  EXPECT_FALSE(collect::WaitForFile(d.path() / "sub" / "never.done", 5000ms, stop));
}

TEST(Collect, StabilityWindowSeesGrowingFiles) {
  TempDir d;
  const fs::path f = d.path() / "a.png";
  std::ofstream(f) << "x";
  std::atomic<bool> stop{false};
  int windows = 0;
  EXPECT_TRUE(collect::WaitStable({f}, 50ms, 3, stop, &windows));
  EXPECT_EQ(windows, 1);
  std::atomic<bool> done{false};
  std::thread grower([&] {
    while (!done) {
      std::ofstream(f, std::ios::app) << "more";
      std::this_thread::sleep_for(10ms);
    }
  });
  // Each window (200 ms) sees about twenty appends; a starved grower would need to miss all.
  EXPECT_FALSE(collect::WaitStable({f}, 200ms, 3, stop, &windows));
  EXPECT_EQ(windows, 3);
  done = true;
  grower.join();
}

TEST(Collect, HardLinkOrCopyAndPngCompleteness) {
  TempDir d;
  const std::string png = std::string("\x89PNG\r\n\x1a\n", 8) + "body" +
                          std::string("\0\0\0\0IEND\xae\x42\x60\x82", 12);
  std::ofstream(d.path() / "a.png", std::ios::binary) << png;
  std::ofstream(d.path() / "t.png", std::ios::binary) << png.substr(0, png.size() - 5);
  EXPECT_TRUE(collect::PngComplete(d.path() / "a.png"));
  EXPECT_FALSE(collect::PngComplete(d.path() / "t.png"));
  EXPECT_FALSE(collect::PngComplete(d.path() / "missing.png"));
  ASSERT_TRUE(collect::LinkOrCopy(d.path() / "a.png", d.path() / "out" / "a.png").ok());
  EXPECT_EQ(fs::hard_link_count(d.path() / "a.png"), 2u);
  EXPECT_EQ(ReadFile(d.path() / "out" / "a.png"), png);
  EXPECT_FALSE(collect::LinkOrCopy(d.path() / "missing.png", d.path() / "out" / "m.png").ok());
}

TEST(Collect, FilesForAPrefixAndOrphanedTemporaries) {
  TempDir d;
  for (const char* f : {"a1_00001_.png", "a1_00002_.png", "a10_00001_.png", "a1_0001_.png",
                        "a1.done.tmp", "a1.done", "b_00001_.png"}) {
    std::ofstream(d.path() / f) << "x";
  }
  auto files = collect::FilesForPrefix(d.path(), "a1");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].filename(), "a1_00001_.png");
  EXPECT_EQ(collect::RemoveOrphanedMarkerTemps(d.path(), "a1"), 1);
  EXPECT_FALSE(fs::exists(d.path() / "a1.done.tmp"));
  EXPECT_TRUE(fs::exists(d.path() / "a1.done"));
}

TEST(Collect, EveryReportedFileWhateverTheOutputKey) {
  // As ComfyUI 0.8.0's history shows them: SaveImage, SaveVideo ("animated"), VHS's gifs (a
  // video, and a single PNG frame), SaveAudio, a temp preview, a key that is not a file list.
  const auto entry = nlohmann::json::parse(R"({"outputs": {
    "10": {"audio": [{"filename": "a_00001_.flac", "subfolder": "s", "type": "output"}]},
    "9": {"images": [{"filename": "v_00001_.mp4", "subfolder": "s", "type": "output"}],
          "animated": [true]},
    "2": {"images": [{"filename": "a_00001_.png", "subfolder": "s", "type": "output"},
                     {"filename": "a_00002_.png", "subfolder": "s", "type": "output"}]},
    "3": {"gifs": [{"filename": "a_00001.mp4", "subfolder": "s", "type": "output",
                    "format": "video/h264-mp4", "frame_rate": 8, "fullpath": "/x"}]},
    "4": {"gifs": [{"filename": "b_00001_001.png", "subfolder": "s", "type": "output",
                    "format": "image/png"}]},
    "5": {"images": [{"filename": "p_00001_.png", "subfolder": "", "type": "temp"}],
          "text": ["not a file"]},
    "6": {"images": [{"filename": "a_00001_.png", "subfolder": "s", "type": "output"}]}}})");
  std::vector<std::string> got;
  for (const auto& o : collect::ReportedOutputs(entry))
    got.push_back(o.filename + " " + o.type + " " + o.kind);
  EXPECT_EQ(got,
            (std::vector<std::string>{"a_00001_.png output image", "a_00002_.png output image",
                                      "a_00001.mp4 output video", "b_00001_001.png output image",
                                      "p_00001_.png temp image", "v_00001_.mp4 output video",
                                      "a_00001_.flac output audio"}));
  EXPECT_TRUE(collect::ReportedOutputs(nlohmann::json::object()).empty());
  EXPECT_EQ(collect::KindOf("x.webm"), "video");
  EXPECT_EQ(collect::KindOf("x.wav"), "audio");
  EXPECT_EQ(collect::KindOf("x.webp"), "image");
}

TEST(Collect, MarkersParseOnlyWithPlainFileNames) {
  auto m = collect::ParseMarker(R"({"filename_prefix": "p", "files": ["a_00001_.png", "b.mp4"]})");
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->files, (std::set<std::string>{"a_00001_.png", "b.mp4"}));
  for (const char* bad : {"", "{", "[]", R"({"files": "a.png"})", R"({"files": ["../a.png"]})",
                          R"({"files": ["d/a.png"]})", R"({"files": [7]})", R"({"files": [""]})"}) {
    EXPECT_EQ(collect::ParseMarker(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
}

TEST(Collect, OrphanCleanupLeavesAnotherAttemptsTemporary) {
  // Attempt 10 of the same scene may be writing its marker in the same directory right now.
  TempDir d;
  for (const char* f :
       {"a1.done.tmp", "a1.9.done.tmp", "a10.done.tmp", "a10.9.done.tmp", "a1x.done.tmp"})
    std::ofstream(d.path() / f) << "x";
  EXPECT_EQ(collect::RemoveOrphanedMarkerTemps(d.path(), "a1"), 2);
  EXPECT_FALSE(fs::exists(d.path() / "a1.done.tmp"));
  EXPECT_FALSE(fs::exists(d.path() / "a1.9.done.tmp"));
  EXPECT_TRUE(fs::exists(d.path() / "a10.9.done.tmp"));
  EXPECT_TRUE(fs::exists(d.path() / "a10.done.tmp"));
  EXPECT_TRUE(fs::exists(d.path() / "a1x.done.tmp"));
}

}  // namespace
}  // namespace scenefarm::testing
