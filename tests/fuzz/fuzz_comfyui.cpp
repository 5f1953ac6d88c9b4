// What the worker reads from ComfyUI: a /history entry (the whole /history/PROMPT_ID reply and
// each entry in it) and each text frame of /ws. Nothing from ComfyUI is trusted to have the
// documented shape (comfyui-api.md): never throws, never crashes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "scenefarm/comfyui.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scenefarm;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)comfyui::ParseEvent(text);
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return 0;
  (void)comfyui::ParseHistoryEntry(doc);
  if (doc.is_object()) {  // GET /history/ID: {ID: entry}
    for (const auto& [id, entry] : doc.items())
      (void)comfyui::ParseHistoryEntry(entry);
  }
  return 0;
}
