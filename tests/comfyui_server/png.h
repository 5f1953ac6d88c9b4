// A minimal PNG encoder (8-bit RGB, zlib via Debian's zlib1g) for the ComfyUI test server's
// SaveImage. Like ComfyUI's it writes a tEXt chunk per metadata entry ("prompt" -> workflow JSON).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace scenefarm::testing::comfy {

// REQUIRES: rgb.size() == width * height * 3.
std::string EncodePng(int width, int height, const std::vector<uint8_t>& rgb,
                      const std::vector<std::pair<std::string, std::string>>& text_chunks);

// Reads back the IHDR size and the tEXt chunks of a PNG written by EncodePng (or any PNG).
// Returns false when the bytes are not a complete PNG (signature, IHDR and IEND present, every
// chunk CRC correct).
struct PngInfo {
  int width = 0;
  int height = 0;
  std::vector<std::pair<std::string, std::string>> text;
};
bool DecodePngInfo(const std::string& bytes, PngInfo* info);

}  // namespace scenefarm::testing::comfy
