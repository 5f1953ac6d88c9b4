#include "png.h"

#include <gtest/gtest.h>

namespace scenefarm::testing::comfy {
namespace {

TEST(Png, RoundTripsSizeAndTextChunks) {
  std::vector<uint8_t> rgb(4 * 3 * 3, 200);
  const std::string png = EncodePng(4, 3, rgb, {{"prompt", "{\"1\":{}}"}});
  EXPECT_EQ(png.substr(1, 3), "PNG");
  PngInfo info;
  ASSERT_TRUE(DecodePngInfo(png, &info));
  EXPECT_EQ(info.width, 4);
  EXPECT_EQ(info.height, 3);
  ASSERT_EQ(info.text.size(), 1u);
  EXPECT_EQ(info.text[0].first, "prompt");
  EXPECT_EQ(info.text[0].second, "{\"1\":{}}");
}

TEST(Png, TruncatedOrCorruptIsRejected) {
  std::vector<uint8_t> rgb(8 * 8 * 3, 7);
  std::string png = EncodePng(8, 8, rgb, {});
  PngInfo info;
  EXPECT_FALSE(DecodePngInfo(png.substr(0, png.size() / 2), &info));
  png[png.size() - 20] ^= 0x55;
  EXPECT_FALSE(DecodePngInfo(png, &info));
  EXPECT_FALSE(DecodePngInfo("not a png", &info));
}

}  // namespace
}  // namespace scenefarm::testing::comfy
