#include <gtest/gtest.h>

#include <fstream>

#include "nodes.h"
#include "support/process.h"

namespace scenefarm::testing::comfy {
namespace {

namespace fs = std::filesystem;

void Touch(const fs::path& p) {
  std::ofstream(p) << "x";
}

TEST(SaveImagePath, SubfolderFromPrefixAndCounterFromExistingFiles) {
  TempDir dir;
  SavePath p = GetSaveImagePath("run1/sceneA", dir.path());
  EXPECT_EQ(p.subfolder, "run1");
  EXPECT_EQ(p.name, "sceneA");
  EXPECT_EQ(p.counter, 1);
  Touch(dir.path() / "run1" / "sceneA_00001_.png");
  Touch(dir.path() / "run1" / "sceneA_00007_.png");
  Touch(dir.path() / "run1" / "sceneAB_00042_.png");  // another prefix
  Touch(dir.path() / "run1" / "sceneA.done");
  EXPECT_EQ(GetSaveImagePath("run1/sceneA", dir.path()).counter, 8);
  EXPECT_EQ(GetSaveImagePath("plain", dir.path()).subfolder, "");
}

TEST(SaveImagePath, PrefixEscapingTheOutputDirectoryRaises) {
  TempDir dir;
  EXPECT_THROW(GetSaveImagePath("../outside/x", dir.path() / "output"), NodeException);
  EXPECT_THROW(GetSaveImagePath("a/../../x", dir.path() / "output"), NodeException);
  EXPECT_NO_THROW(GetSaveImagePath("a/../b/x", dir.path() / "output"));
}

TEST(PathIsWithin, ComparesWholeComponents) {
  EXPECT_TRUE(PathIsWithin("/data/out", "/data/out"));
  EXPECT_TRUE(PathIsWithin("/data/out", "/data/out/a/../b"));
  EXPECT_FALSE(PathIsWithin("/data/out", "/data/output2"));
  EXPECT_FALSE(PathIsWithin("/data/out", "/data/out/../x"));
}

}  // namespace
}  // namespace scenefarm::testing::comfy
