#include "scenefarm/scene.h"

#include <algorithm>
#include <atomic>
#include <random>
#include <system_error>
#include <thread>
#include <type_traits>

namespace scenefarm {
namespace {

using json = nlohmann::json;

Status FieldError(const std::string& field, const std::string& what) {
  return Status::InvalidArgument("scene: field '" + field + "' " + what);
}

Status CheckWorkflow(const json& w) {
  if (!w.is_object() || w.empty()) {
    return FieldError("workflow", "must be a non-empty object (ComfyUI API format)");
  }
  for (const auto& [node_id, node] : w.items()) {
    if (!node.is_object() || !node.contains("class_type") || !node["class_type"].is_string()) {
      return FieldError("workflow", "node '" + node_id + "' has no class_type string");
    }
    if (node.contains("inputs") && !node["inputs"].is_object()) {
      return FieldError("workflow", "node '" + node_id + "' inputs must be an object");
    }
    // A link (["node", slot]) is not a path; a string prefix names files under the output
    // directory and must stay there.
    if (node.contains("inputs") && node["inputs"].contains("filename_prefix") &&
        node["inputs"]["filename_prefix"].is_string() &&
        !IsSafeRelativePath(node["inputs"]["filename_prefix"].get_ref<const std::string&>())) {
      return FieldError("workflow", "node '" + node_id +
                                        "' filename_prefix must be a relative path inside the "
                                        "output directory (no '..', no leading '/', no "
                                        "backslash or control character, components of at "
                                        "most " +
                                        std::to_string(kMaxPathComponentBytes) + " bytes), got " +
                                        node["inputs"]["filename_prefix"].dump());
    }
  }
  return Status::Ok();
}

Status ReadInt(const json& doc, const char* field, int min, int max, std::optional<int>* out) {
  if (!doc.contains(field)) return Status::Ok();
  const json& v = doc[field];
  // An unsigned number above INT64_MAX is out of range, not a negative number.
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(max)) ||
      v.get<int64_t>() < min || v.get<int64_t>() > max) {
    return FieldError(field, "must be an integer from " + std::to_string(min) + " to " +
                                 std::to_string(max) + ", got " + v.dump());
  }
  *out = v.get<int>();
  return Status::Ok();
}

Status ReadId(const json& doc, const char* field, std::string* out) {
  if (!doc.contains(field)) return Status::Ok();
  if (!doc[field].is_string() || !IsValidId(doc[field].get<std::string>())) {
    return FieldError(
        field, "must match [A-Za-z0-9._-]{1,128} and not be '.' or '..', got " + doc[field].dump());
  }
  *out = doc[field].get<std::string>();
  return Status::Ok();
}

}  // namespace

bool IsValidId(std::string_view id) {
  if (id.empty() || id.size() > 128 || id == "." || id == "..") return false;
  for (char c : id) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

bool IsSafeRelativePath(std::string_view path) {
  if (path.empty() || path.size() > 1024 || path.front() == '/') return false;
  for (char c : path) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '\\') return false;
  }
  size_t at = 0;
  while (at <= path.size()) {
    const size_t end = std::min(path.find('/', at), path.size());
    const std::string_view part = path.substr(at, end - at);
    if (part.empty() || part == "." || part == ".." || part.size() > kMaxPathComponentBytes) {
      return false;
    }
    at = end + 1;
  }
  return true;
}

std::string GenerateSceneId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id = "s-";
  uint64_t r = rng();
  for (int i = 0; i < 16; ++i, r >>= 4)
    id += kHex[r & 15];
  return id;
}

namespace {

template <typename Doc>
Result<Scene> SceneFrom(Doc&& doc) {
  if (!doc.is_object()) return Status::InvalidArgument("scene: must be a JSON object");
  static const char* kFields[] = {
      "id", "run", "workflow", "priority", "retry_budget", "expected_frames", "metadata"};
  for (const auto& item : doc.items()) {
    const std::string& key = item.key();  // (clang 14 cannot capture a structured binding)
    if (std::find_if(std::begin(kFields), std::end(kFields),
                     [&](const char* f) { return key == f; }) == std::end(kFields)) {
      return FieldError(key,
                        "is not a scene field (id, run, workflow, priority, retry_budget, "
                        "expected_frames, metadata)");
    }
  }
  Scene s;
  if (Status st = ReadId(doc, "id", &s.id); !st.ok()) return st;
  if (Status st = ReadId(doc, "run", &s.run); !st.ok()) return st;
  if (!doc.contains("workflow")) return FieldError("workflow", "is missing");
  if (Status st = CheckWorkflow(doc["workflow"]); !st.ok()) return st;
  if constexpr (std::is_lvalue_reference_v<Doc>) {
    s.workflow = doc["workflow"];
  } else {
    s.workflow = std::move(doc["workflow"]);
  }
  std::optional<int> priority;
  if (Status st = ReadInt(doc, "priority", kMinPriority, kMaxPriority, &priority); !st.ok()) {
    return st;
  }
  s.priority = priority.value_or(0);
  if (Status st = ReadInt(doc, "retry_budget", 0, kMaxRetryBudget, &s.retry_budget); !st.ok()) {
    return st;
  }
  if (Status st = ReadInt(doc, "expected_frames", 0, 1000000, &s.expected_frames); !st.ok()) {
    return st;
  }
  if (doc.contains("metadata")) {
    if (!doc["metadata"].is_object()) return FieldError("metadata", "must be an object");
    if constexpr (std::is_lvalue_reference_v<Doc>) {
      s.metadata = doc["metadata"];
    } else {
      s.metadata = std::move(doc["metadata"]);
    }
  }
  if (s.id.empty()) s.id = GenerateSceneId();
  return s;
}

}  // namespace

Result<Scene> SceneFromJson(const json& doc) {
  return SceneFrom(doc);
}
Result<Scene> SceneFromJson(json&& doc) {
  return SceneFrom(std::move(doc));
}

Result<Scene> ParseScene(std::string_view text) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::InvalidArgument("scene: not valid JSON");
  return SceneFromJson(doc);
}

json SceneToJson(Scene&& s) {
  json j = {{"id", s.id}, {"run", s.run}, {"workflow", nullptr}, {"priority", s.priority}};
  j["workflow"] = std::move(s.workflow);
  if (s.retry_budget) j["retry_budget"] = *s.retry_budget;
  if (s.expected_frames) j["expected_frames"] = *s.expected_frames;
  if (!s.metadata.empty()) j["metadata"] = std::move(s.metadata);
  return j;
}

json SceneToJson(const Scene& s) {
  json j = {{"id", s.id}, {"run", s.run}, {"workflow", s.workflow}, {"priority", s.priority}};
  if (s.retry_budget) j["retry_budget"] = *s.retry_budget;
  if (s.expected_frames) j["expected_frames"] = *s.expected_frames;
  if (!s.metadata.empty()) j["metadata"] = s.metadata;
  return j;
}

namespace {

Status TooLarge(const std::string& where, size_t bytes, size_t max) {
  return Status::InvalidArgument(where + ": scene document is " + std::to_string(bytes) +
                                 " bytes, over the limit of " + std::to_string(max) +
                                 " (--max-scene-bytes, SCENEFARM_MAX_SCENE_BYTES)");
}

using SceneFn = std::function<Status(Scene&&)>;

// A part smaller than this is not worth a thread of its own.
constexpr size_t kMinBytesPerPart = size_t{1} << 20;

Status AddScene(json doc, const std::optional<std::string>& default_run, const std::string& where,
                const SceneFn& fn) {
  if (default_run && doc.is_object() && !doc.contains("run")) doc["run"] = *default_run;
  auto scene = SceneFromJson(std::move(doc));
  if (!scene.ok()) return Status::InvalidArgument(where + ": " + scene.status().message());
  return fn(std::move(scene).value());
}

}  // namespace

Result<std::vector<Scene>> ParseSceneStream(std::string_view text,
                                            const std::optional<std::string>& default_run,
                                            size_t max_doc_bytes) {
  std::vector<Scene> scenes;
  Status st = ForEachScene(text, default_run, max_doc_bytes, [&](Scene&& s) {
    scenes.push_back(std::move(s));
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return scenes;
}

namespace {

// The JSON-lines loop of ForEachSceneInParts over lines (whose first line is line number
// first_line + 1), calling fn(part, scene).
Status ForEachSceneLine(std::string_view lines, size_t first_line,
                        const std::optional<std::string>& default_run, size_t max_doc_bytes,
                        size_t part, const PartSceneFn& fn) {
  const SceneFn each = [&](Scene&& s) { return fn(part, std::move(s)); };
  size_t line_no = first_line;
  size_t at = 0;
  while (at <= lines.size()) {
    const size_t end = std::min(lines.find('\n', at), lines.size());
    const std::string_view line = lines.substr(at, end - at);
    ++line_no;
    at = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    const std::string where = "line " + std::to_string(line_no);
    if (line.size() > max_doc_bytes) return TooLarge(where, line.size(), max_doc_bytes);
    json doc = json::parse(line, nullptr, false);
    if (doc.is_discarded()) return Status::InvalidArgument(where + ": not valid JSON");
    Status s = AddScene(std::move(doc), default_run, where, each);
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Status ForEachScene(std::string_view text, const std::optional<std::string>& default_run,
                    size_t max_doc_bytes, const SceneFn& scenes) {
  return ForEachSceneInParts(text, default_run, max_doc_bytes, 1,
                             [&](size_t, Scene&& s) { return scenes(std::move(s)); });
}

Status ForEachSceneInParts(std::string_view text, const std::optional<std::string>& default_run,
                           size_t max_doc_bytes, size_t parts, const PartSceneFn& fn) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return Status::Ok();
  json whole = json::parse(text, nullptr, false);
  const SceneFn part0 = [&](Scene&& s) { return fn(0, std::move(s)); };
  if (!whole.is_discarded() && whole.is_array()) {
    for (size_t i = 0; i < whole.size(); ++i) {
      const std::string where = "element " + std::to_string(i);
      if (const size_t n = whole[i].dump().size(); n > max_doc_bytes) {
        return TooLarge(where, n, max_doc_bytes);
      }
      Status s = AddScene(std::move(whole[i]), default_run, where, part0);
      if (!s.ok()) return s;
    }
    return Status::Ok();
  }
  if (!whole.is_discarded()) {
    const size_t last = text.find_last_not_of(" \t\r\n");
    if (const size_t n = last - first + 1; n > max_doc_bytes) {
      return TooLarge("document", n, max_doc_bytes);
    }
    return AddScene(std::move(whole), default_run, "document", part0);
  }
  // JSON lines: parts contiguous ranges of whole lines, each parsed on a thread of its own. Each
  // part stops at its first error; the earliest part's is the input's first, as one pass finds.
  parts = std::max<size_t>(1, std::min(parts, text.size() / kMinBytesPerPart + 1));
  std::vector<size_t> starts = {0};
  for (size_t k = 1; k < parts; ++k) {
    const size_t nl = text.find('\n', std::max(starts.back(), text.size() / parts * k));
    if (nl == std::string_view::npos) break;
    if (nl + 1 > starts.back()) starts.push_back(nl + 1);
  }
  starts.push_back(text.size() + 1);
  const size_t n = starts.size() - 1;
  std::vector<Status> results(n, Status::Ok());
  std::vector<size_t> first_line(n, 0);
  for (size_t k = 1; k < n; ++k) {
    first_line[k] =
        first_line[k - 1] +
        static_cast<size_t>(std::count(text.begin() + static_cast<ptrdiff_t>(starts[k - 1]),
                                       text.begin() + static_cast<ptrdiff_t>(starts[k]), '\n'));
  }
  // A part after one that failed stops: its errors come later in the input.
  std::atomic<size_t> earliest_failed{n};
  auto run_part = [&](size_t k) {
    const PartSceneFn each = [&](size_t part, Scene&& s) {
      if (earliest_failed.load(std::memory_order_relaxed) < part) {
        return Status::Internal("stopped: an earlier line failed");  // never returned
      }
      return fn(part, std::move(s));
    };
    // A part but the last ends before its last line's newline; the last ends with the text.
    const size_t end = std::min(starts[k + 1], text.size());
    results[k] = ForEachSceneLine(text.substr(starts[k], end - starts[k] - (k + 1 < n ? 1 : 0)),
                                  first_line[k], default_run, max_doc_bytes, k, each);
    if (results[k].ok()) return;
    size_t seen = earliest_failed.load();
    while (k < seen && !earliest_failed.compare_exchange_weak(seen, k)) {
    }
  };
  std::vector<std::thread> threads;
  std::vector<size_t> here;  // parts no thread could be started for: parsed on this one
  for (size_t k = 1; k < n; ++k) {
    try {
      threads.emplace_back(run_part, k);
    } catch (const std::system_error&) {
      here.push_back(k);
    }
  }
  run_part(0);
  for (size_t k : here)
    run_part(k);
  for (auto& t : threads)
    t.join();
  for (const Status& s : results) {
    if (!s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace scenefarm
