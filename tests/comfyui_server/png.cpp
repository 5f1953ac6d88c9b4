#include "png.h"

#include <zlib.h>

#include <cstring>

namespace scenefarm::testing::comfy {
namespace {

constexpr char kSignature[] = "\x89PNG\r\n\x1a\n";

void PutU32(std::string* out, uint32_t v) {
  out->push_back(static_cast<char>(v >> 24));
  out->push_back(static_cast<char>(v >> 16));
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

uint32_t GetU32(const std::string& s, size_t at) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(s[at])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(s[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(s[at + 3]));
}

void PutChunk(std::string* out, const char type[4], const std::string& data) {
  PutU32(out, static_cast<uint32_t>(data.size()));
  std::string body(type, 4);
  body += data;
  out->append(body);
  PutU32(out,
         static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())));
}

}  // namespace

std::string EncodePng(int width, int height, const std::vector<uint8_t>& rgb,
                      const std::vector<std::pair<std::string, std::string>>& text_chunks) {
  std::string out(kSignature, 8);
  std::string ihdr;
  PutU32(&ihdr, static_cast<uint32_t>(width));
  PutU32(&ihdr, static_cast<uint32_t>(height));
  ihdr += '\x08';                // bit depth
  ihdr += '\x02';                // colour type RGB
  ihdr += std::string(3, '\0');  // compression, filter, interlace
  PutChunk(&out, "IHDR", ihdr);
  for (const auto& [key, value] : text_chunks)
    PutChunk(&out, "tEXt", key + '\0' + value);

  const size_t row = static_cast<size_t>(width) * 3;
  std::string raw;
  raw.reserve((row + 1) * height);
  for (int y = 0; y < height; ++y) {
    raw += '\0';  // filter: none
    raw.append(reinterpret_cast<const char*>(rgb.data()) + y * row, row);
  }
  uLongf packed_size = compressBound(raw.size());
  std::string packed(packed_size, '\0');
  // Level 4, as ComfyUI's SaveImage uses by default.
  compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
            reinterpret_cast<const Bytef*>(raw.data()), raw.size(), 4);
  packed.resize(packed_size);
  PutChunk(&out, "IDAT", packed);
  PutChunk(&out, "IEND", "");
  return out;
}

bool DecodePngInfo(const std::string& bytes, PngInfo* info) {
  if (bytes.size() < 8 || std::memcmp(bytes.data(), kSignature, 8) != 0) return false;
  size_t at = 8;
  bool saw_ihdr = false;
  while (at + 12 <= bytes.size()) {
    const uint32_t len = GetU32(bytes, at);
    if (at + 12 + len > bytes.size()) return false;
    const std::string type = bytes.substr(at + 4, 4);
    const std::string data = bytes.substr(at + 8, len);
    const uint32_t crc = GetU32(bytes, at + 8 + len);
    if (crc != crc32(0, reinterpret_cast<const Bytef*>(bytes.data() + at + 4), len + 4)) {
      return false;
    }
    if (type == "IHDR" && len >= 8) {
      info->width = static_cast<int>(GetU32(data, 0));
      info->height = static_cast<int>(GetU32(data, 4));
      saw_ihdr = true;
    } else if (type == "tEXt") {
      const auto nul = data.find('\0');
      if (nul != std::string::npos)
        info->text.emplace_back(data.substr(0, nul), data.substr(nul + 1));
    } else if (type == "IEND") {
      return saw_ihdr;
    }
    at += 12 + len;
  }
  return false;
}

}  // namespace scenefarm::testing::comfy
