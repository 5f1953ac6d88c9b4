// The scene document parser and the enqueue input reader (one object, an array, JSON lines):
// what `scenefarm enqueue` and POST /api/queues/Q/scenes read from a user. Never throws, never
// crashes; a scene it accepts serializes and parses back to the same document.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "scenefarm/scene.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scenefarm;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto one = ParseScene(text);
  if (one.ok()) {
    const std::string again = SceneToJson(*one).dump();
    auto back = ParseScene(again);
    if (!back.ok() || SceneToJson(*back).dump() != again) std::abort();  // not a round trip
  }
  (void)ParseSceneStream(text, std::string("fuzz-run"), 4096);
  (void)ForEachScene(text, std::nullopt, kDefaultMaxSceneBytes, [](Scene&& scene) {
    if (!IsValidId(scene.id)) std::abort();  // an accepted scene always has a safe id
    return Status::Ok();
  });
  (void)IsSafeRelativePath(text);
  return 0;
}
