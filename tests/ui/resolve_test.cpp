// The artifact paths the exporter serves (exporter/ui.h): nothing outside the artifacts
// directory, whatever the run name or path says.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "support/process.h"
#include "ui.h"

namespace scenefarm::exporter::ui {
namespace {

namespace fs = std::filesystem;

class ResolveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path() / "artifacts";
    fs::create_directories(root_ / "run1" / "s1");
    std::ofstream(root_ / "run1" / "s1" / "f_00001_.png") << "png";
    std::ofstream(root_ / "run1" / "run-summary.txt") << "summary";
    std::ofstream(dir_.path() / "secret.txt") << "secret";
    fs::create_directories(dir_.path() / "outside");
  }
  StatusCode Code(const std::string& run, const std::string& rel) {
    auto r = ResolveRunFile(root_, run, rel);
    return r.ok() ? StatusCode::kOk : r.status().code();
  }
  scenefarm::testing::TempDir dir_;
  fs::path root_;
};

TEST_F(ResolveTest, FilesInsideTheRunResolve) {
  auto r = ResolveRunFile(root_, "run1", "s1/f_00001_.png");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, fs::canonical(root_ / "run1" / "s1" / "f_00001_.png"));
  EXPECT_EQ(Code("run1", "run-summary.txt"), StatusCode::kOk);
  EXPECT_EQ(Code("run1", "s1/none.png"), StatusCode::kNotFound);
  EXPECT_EQ(Code("run2", "x.png"), StatusCode::kNotFound);
}

TEST_F(ResolveTest, DotDotAbsoluteEmptyAndNulPartsAreRefused) {
  EXPECT_EQ(Code("run1", "../../secret.txt"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("run1", "s1/../../../secret.txt"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("run1", "s1/.."), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("run1", "./run-summary.txt"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("run1", (dir_.path() / "secret.txt").string()), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("run1", "s1//f_00001_.png"), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("run1", ""), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("run1", std::string("run-summary.txt\0.png", 20)), StatusCode::kInvalidArgument);
  EXPECT_EQ(Code("run1", "s1\\..\\..\\secret.txt"), StatusCode::kInvalidArgument);
}

TEST_F(ResolveTest, BadRunNamesAreRefused) {
  for (const std::string& run :
       std::vector<std::string>{"", ".", "..", "a/b", "../artifacts", std::string("run1\0x", 6)})
    EXPECT_EQ(Code(run, "run-summary.txt"), StatusCode::kInvalidArgument) << run;
}

TEST_F(ResolveTest, SymlinksLeadingOutsideAreRefusedInsideAllowed) {
  fs::create_symlink(dir_.path() / "secret.txt", root_ / "run1" / "s1" / "abs.png");
  fs::create_symlink("../../../secret.txt", root_ / "run1" / "s1" / "rel.png");
  fs::create_symlink(dir_.path() / "outside", root_ / "run1" / "s2");
  fs::create_symlink(dir_.path() / "outside", root_ / "escaped-run");
  std::ofstream(dir_.path() / "outside" / "x.png") << "x";
  fs::create_symlink("f_00001_.png", root_ / "run1" / "s1" / "inside.png");
  EXPECT_EQ(Code("run1", "s1/abs.png"), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Code("run1", "s1/rel.png"), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Code("run1", "s2/x.png"), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Code("escaped-run", "x.png"), StatusCode::kFailedPrecondition);
  EXPECT_EQ(Code("run1", "s1/inside.png"), StatusCode::kOk);
}

TEST_F(ResolveTest, AnArtifactsDirectoryReachedThroughASymlinkStillServes) {
  fs::create_symlink(root_, dir_.path() / "link");
  auto r = ResolveRunFile(dir_.path() / "link", "run1", "s1/f_00001_.png");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
}

TEST(ContentType, ByExtension) {
  EXPECT_EQ(ContentTypeFor("a/b.PNG"), "image/png");
  EXPECT_EQ(ContentTypeFor("x.webm"), "video/webm");
  EXPECT_EQ(ContentTypeFor("artifact-metadata.json"), "application/json");
  EXPECT_EQ(ContentTypeFor("run-summary.txt"), "text/plain");
  EXPECT_EQ(ContentTypeFor("page.html"), "text/html");
  EXPECT_EQ(ContentTypeFor("x.bin"), "application/octet-stream");
}

TEST(Assets, PagesAreEmbeddedAndRunNoInlineScript) {
  for (const char* name : {"index.html", "app.js", "app.css"}) {
    const EmbeddedAsset* a = FindAsset(name);
    ASSERT_NE(a, nullptr) << name;
    EXPECT_GT(a->size, 100u) << name;
  }
  const EmbeddedAsset* html = FindAsset("index.html");
  const std::string page(reinterpret_cast<const char*>(html->data), html->size);
  // Every <script> has a src (the CSP refuses inline script anyway) and nothing comes from
  // another origin.
  for (size_t p = page.find("<script"); p != std::string::npos; p = page.find("<script", p + 1))
    EXPECT_NE(page.substr(p, page.find('>', p) - p).find("src=\"/ui/"), std::string::npos);
  EXPECT_EQ(page.find("http://"), std::string::npos);
  EXPECT_EQ(page.find("https://"), std::string::npos);
  EXPECT_EQ(page.find(" on"), std::string::npos);  // no onclick= and the like
  const EmbeddedAsset* js = FindAsset("app.js");
  const std::string code(reinterpret_cast<const char*>(js->data), js->size);
  EXPECT_EQ(code.find("innerHTML"), std::string::npos);
  EXPECT_EQ(code.find("insertAdjacentHTML"), std::string::npos);
  EXPECT_EQ(code.find("eval("), std::string::npos);
}

}  // namespace
}  // namespace scenefarm::exporter::ui
