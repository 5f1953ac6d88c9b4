// Gunzip for tests that check a gzipped HTTP body (the exporter's /metrics). Header-only: only
// the suites that link zlib (through the exporter) include it.
#pragma once

#include <zlib.h>

#include <string>

namespace scenefarm::testing {

// `in` (RFC 1952) inflated into *out; false unless it was one whole gzip stream.
inline bool Gunzip(const std::string& in, std::string* out) {
  out->clear();
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return false;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  char buf[65536];
  int ret = Z_OK;
  while (ret == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buf);
    zs.avail_out = sizeof(buf);
    ret = inflate(&zs, Z_NO_FLUSH);
    out->append(buf, sizeof(buf) - zs.avail_out);
  }
  inflateEnd(&zs);
  return ret == Z_STREAM_END;
}

}  // namespace scenefarm::testing
