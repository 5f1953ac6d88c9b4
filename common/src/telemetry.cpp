#include "scenefarm/telemetry.h"

#include "scenefarm/scene.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <fstream>
#include <set>
#include <sstream>

namespace scenefarm::telemetry {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json OptNumber(const std::optional<double>& v) {
  return v ? json(std::round(*v * 10.0) / 10.0) : json(nullptr);
}

double Round3(double v) {
  return std::round(v * 1000.0) / 1000.0;
}

std::string Text(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

// A string field of a document read from disk, or def when it is absent or not a string: files
// are written by other processes and by hand, and a wrong type is reported, never thrown.
std::string StrField(const json& o, const char* k, const std::string& def = "") {
  if (!o.is_object()) return def;
  const auto it = o.find(k);
  return it != o.end() && it->is_string() ? it->get<std::string>() : def;
}

bool BoolField(const json& o, const char* k) {
  if (!o.is_object()) return false;
  const auto it = o.find(k);
  return it != o.end() && it->is_boolean() && it->get<bool>();
}

Result<json> ReadJson(const fs::path& p) {
  std::ifstream in(p);
  if (!in) return Status::NotFound(p.string() + ": cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) return Status::InvalidArgument(p.string() + ": not valid JSON");
  return j;
}

// The Telemetry keys in the order of the summary line; GPU and fallback are handled apart.
const std::vector<std::string> kLineKeys = {
    "DurationSeconds",          "MaxWaitSeconds",
    "PollIntervalSeconds",      "HistoryAttempts",
    "HistoryAttemptLimit",      "pollLimit",
    "SceneRetryBudget",         "PostExecutionTimeoutSeconds",
    "ExecutionSuccessDetected", "ExecutionSuccessAt",
    "HistoryExitReason",        "HistoryPostExecutionTimeoutReached",
    "DoneMarkerDetected",       "DoneMarkerWaitSeconds",
    "ForcedCopyTriggered",      "FrameCount"};

}  // namespace

namespace {
const std::vector<std::pair<const char*, const char*>>& Reasons() {
  static const std::vector<std::pair<const char*, const char*>> kReasons = {
      {"GPU memory pressure", "gpu_memory_pressure"},
      {"Forced copy", "forced_copy"},
      {"done marker not seen", "done_marker_timeout"},
      {"done marker not trusted", "done_marker_untrusted"},
      {"done-marker node not installed", "done_marker_node_missing"},
      {"/system_stats unavailable", "gpu_stats_fallback"},
      {"GPU telemetry unavailable", "gpu_stats_unavailable"},
      {"runs on CPU", "cpu_device"},
      {"lost the prompt", "prompt_lost"},
      {"adopted attempt", "earlier_attempt_adopted"},
      {"orphaned .done.tmp", "orphaned_done_tmp"},
      {"below expected_frames", "frames_short"},
      {"refused the workflow", "workflow_refused"}};
  return kReasons;
}
}  // namespace

const std::vector<std::string>& FallbackReasonNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& [part, reason] : Reasons())
      n.push_back(reason);
    n.push_back("other");
    return n;
  }();
  return names;
}

bool IsFrameFile(const fs::path& p) {
  const std::string ext = p.extension().string();
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".webp" || ext == ".exr" ||
         ext == ".gif" || ext == ".mp4" || ext == ".webm";
}

bool IsOutputFile(const fs::path& p) {
  if (IsFrameFile(p)) return true;
  const std::string ext = p.extension().string();
  for (const char* e :
       {".mkv", ".mov", ".avi", ".flac", ".mp3", ".wav", ".ogg", ".opus", ".m4a", ".aac"}) {
    if (ext == e) return true;
  }
  return false;
}

std::string FallbackReason(const std::string& note) {
  for (const auto& [part, reason] : Reasons()) {
    if (note.find(part) != std::string::npos) return reason;
  }
  return "other";
}

std::vector<std::string> FallbackReasons(const json& t) {
  std::vector<std::string> out;
  if (!t.is_object() || !t.contains("System") || !t["System"].is_object()) return out;
  for (const auto& n : t["System"].value("FallbackNotes", json::array())) {
    if (!n.is_string()) continue;
    const std::string r = FallbackReason(n.get<std::string>());
    if (std::find(out.begin(), out.end(), r) == out.end()) out.push_back(r);
  }
  return out;
}

std::string PollLimit(int limit) {
  return limit <= 0 ? "unbounded" : std::to_string(limit);
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string IsoTime(int64_t ms) {
  const std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof(out), "%s.%03dZ", buf, static_cast<int>(ms % 1000));
  return out;
}

void SceneTelemetry::AddNote(const std::string& note) {
  if (std::find(fallback_notes.begin(), fallback_notes.end(), note) == fallback_notes.end())
    fallback_notes.push_back(note);
}

json SceneTelemetry::ToJson() const {
  json gpu = {{"Name", gpu_name.empty() ? json(nullptr) : json(gpu_name)},
              {"VramBeforeMB", OptNumber(vram_before_mb)},
              {"VramAfterMB", OptNumber(vram_after_mb)},
              {"VramDeltaMB", vram_before_mb && vram_after_mb
                                  ? OptNumber(std::round(*vram_after_mb * 10.0) / 10.0 -
                                              std::round(*vram_before_mb * 10.0) / 10.0)
                                  : json(nullptr)}};
  json t = {{"DurationSeconds", Round3(duration_seconds)},
            {"MaxWaitSeconds", policy.max_wait_seconds},
            {"PollIntervalSeconds", policy.poll_interval_seconds},
            {"HistoryAttempts", history_attempts},
            {"HistoryAttemptLimit", policy.history_max_attempts},
            {"pollLimit", PollLimit(policy.history_max_attempts)},
            {"HistoryExitReason", history_exit_reason},
            {"ExecutionSuccessDetected", execution_success_detected},
            {"ExecutionSuccessAt",
             execution_success_at.empty() ? json(nullptr) : json(execution_success_at)},
            {"PostExecutionTimeoutSeconds", policy.post_execution_timeout_seconds},
            {"HistoryPostExecutionTimeoutReached", post_execution_timeout_reached},
            {"SceneRetryBudget", policy.retry_budget},
            {"GPU", gpu},
            {"System", {{"FallbackNotes", fallback_notes}}},
            {"DoneMarkerDetected", done_marker_detected},
            {"DoneMarkerWaitSeconds", Round3(done_marker_wait_seconds)},
            {"DoneMarkerWaitLimitSeconds", policy.done_marker_wait_seconds},
            {"ForcedCopyTriggered", forced_copy_triggered},
            {"FrameCount", frame_count}};
  json file_list = json::array();
  for (const auto& f : files)
    file_list.push_back({{"Name", f.name}, {"Kind", f.kind}});
  return {{"SceneId", scene_id},
          {"RunId", run},
          {"Attempt", attempt},
          {"PromptId", prompt_id},
          {"WorkerId", worker_id},
          {"Status", status},
          {"Error", error.empty() ? json(nullptr) : json(error)},
          {"ExpectedFrames", expected_frames > 0 ? json(expected_frames) : json(nullptr)},
          {"StartedAt", started_at},
          {"FinishedAt", finished_at},
          {"Frames", frames},
          {"Files", file_list},
          {"Telemetry", t}};
}

std::string SceneTelemetry::SummaryLine(const json& doc) {
  // Read from disk: any part may be missing or of another type.
  auto object = [](const json& o, const char* k) {
    return o.is_object() && o.contains(k) && o[k].is_object() ? o[k] : json::object();
  };
  const json t = object(doc, "Telemetry");
  std::ostringstream line;
  line << "[Scene " << StrField(doc, "SceneId", "?") << "] Telemetry: ";
  bool first = true;
  auto add = [&](const std::string& k, const json& v) {
    line << (first ? "" : " | ") << k << "=" << Text(v);
    first = false;
  };
  for (const auto& k : kLineKeys)
    add(k, t.value(k, json(nullptr)));
  const json gpu = object(t, "GPU");
  add("GPU", gpu.value("Name", json(nullptr)));
  add("VramBeforeMB", gpu.value("VramBeforeMB", json(nullptr)));
  add("VramAfterMB", gpu.value("VramAfterMB", json(nullptr)));
  add("VramDeltaMB", gpu.value("VramDeltaMB", json(nullptr)));
  add("Status", doc.is_object() ? doc.value("Status", json(nullptr)) : json(nullptr));
  const json notes = object(t, "System").value("FallbackNotes", json::array());
  if (notes.is_array() && !notes.empty()) {
    std::string joined;
    for (const auto& n : notes)
      joined += (joined.empty() ? "" : "; ") + Text(n);
    add("fallback", joined);
  }
  return line.str();
}

Status WriteFileAtomically(const fs::path& path, const std::string& data) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  const fs::path tmp = path.string() + ".tmp." + std::to_string(getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::Internal("cannot write " + tmp.string() + ": " + strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::Internal("cannot write " + tmp.string() + ": " + strerror(errno));
    }
    off += static_cast<size_t>(n);
  }
  ::fsync(fd);
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status::Internal("cannot rename to " + path.string() + ": " + strerror(errno));
  }
  return Status::Ok();
}

Status AssembleRun(const fs::path& run_dir, const Policy& policy) {
  std::vector<json> scenes;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run_dir, ec)) {
    if (!entry.is_directory()) continue;
    auto doc = ReadJson(entry.path() / "telemetry.json");
    if (doc.ok() && doc->is_object()) scenes.push_back(std::move(doc).value());
  }
  if (ec) return Status::NotFound(run_dir.string() + ": " + ec.message());
  std::sort(scenes.begin(), scenes.end(), [](const json& a, const json& b) {
    return StrField(a, "SceneId") < StrField(b, "SceneId");
  });
  int succeeded = 0, markers = 0, forced = 0;
  int64_t frames = 0;
  for (const auto& s : scenes) {
    const json t =
        s.contains("Telemetry") && s["Telemetry"].is_object() ? s["Telemetry"] : json::object();
    if (StrField(s, "Status") == "succeeded") ++succeeded;
    // A count a scene could not have (negative, fractional, absurd) adds nothing; the
    // validator reports it.
    if (t.contains("FrameCount") && t["FrameCount"].is_number_integer() &&
        t["FrameCount"].get<int64_t>() >= 0 && t["FrameCount"].get<int64_t>() <= 1000000)
      frames += t["FrameCount"].get<int>();
    if (t.contains("DoneMarkerDetected") && t["DoneMarkerDetected"] == true) ++markers;
    if (t.contains("ForcedCopyTriggered") && t["ForcedCopyTriggered"] == true) ++forced;
  }
  const std::string run = run_dir.filename().string();
  const json queue_policy = {
      {"SceneRetryBudget", policy.retry_budget},
      {"SceneMaxWaitSeconds", policy.max_wait_seconds},
      {"SceneHistoryMaxAttempts", policy.history_max_attempts},
      {"pollLimit", PollLimit(policy.history_max_attempts)},
      {"SceneHistoryPollIntervalSeconds", policy.poll_interval_seconds},
      {"ScenePostExecutionTimeoutSeconds", policy.post_execution_timeout_seconds},
      {"DoneMarkerWaitSeconds", policy.done_marker_wait_seconds}};
  const json totals = {{"Scenes", scenes.size()},
                       {"Succeeded", succeeded},
                       {"NotSucceeded", static_cast<int>(scenes.size()) - succeeded},
                       {"Frames", frames},
                       {"DoneMarkers", markers},
                       {"ForcedCopies", forced}};
  const json meta = {{"RunId", run},
                     {"GeneratedAt", IsoTime(NowMs())},
                     {"QueuePolicy", queue_policy},
                     {"Totals", totals},
                     {"Scenes", scenes}};
  if (Status s = WriteFileAtomically(run_dir / "artifact-metadata.json", meta.dump(2) + "\n");
      !s.ok()) {
    return s;
  }
  std::ostringstream sum;
  sum << "scenefarm run summary\n"
      << "Run: " << run << "\n"
      << "Generated: " << meta["GeneratedAt"].get<std::string>() << "\n"
      << "Queue policy: SceneRetryBudget=" << policy.retry_budget
      << " | SceneMaxWaitSeconds=" << Text(queue_policy["SceneMaxWaitSeconds"])
      << " | SceneHistoryMaxAttempts=" << policy.history_max_attempts
      << " | pollLimit=" << PollLimit(policy.history_max_attempts)
      << " | SceneHistoryPollIntervalSeconds="
      << Text(queue_policy["SceneHistoryPollIntervalSeconds"])
      << " | ScenePostExecutionTimeoutSeconds="
      << Text(queue_policy["ScenePostExecutionTimeoutSeconds"])
      << " | DoneMarkerWaitSeconds=" << Text(queue_policy["DoneMarkerWaitSeconds"]) << "\n"
      << "Scenes: " << scenes.size() << " | succeeded=" << succeeded
      << " | not succeeded=" << totals["NotSucceeded"].get<int>() << " | frames=" << frames
      << " | done markers=" << markers << " | forced copies=" << forced << "\n";
  for (const auto& s : scenes)
    sum << SceneTelemetry::SummaryLine(s) << "\n";
  return WriteFileAtomically(run_dir / "run-summary.txt", sum.str());
}

namespace {

class Checker {
 public:
  explicit Checker(std::vector<std::string>& out) : out_(out) {}
  void Add(const std::string& where, const std::string& what) {
    out_.push_back(where + ": " + what);
  }
  // A field that must exist with a JSON type; null allowed only when `nullable`.
  bool Field(const std::string& where, const json& obj, const std::string& path,
             const std::string& key, json::value_t type, bool nullable = false) {
    if (!obj.is_object() || !obj.contains(key)) {
      Add(where, "missing field " + path + key);
      return false;
    }
    const json& v = obj[key];
    if (v.is_null()) {
      if (!nullable) Add(where, path + key + " is null");
      return false;
    }
    const bool ok = type == json::value_t::number_float     ? v.is_number()
                    : type == json::value_t::number_integer ? v.is_number_integer()
                                                            : v.type() == type;
    if (!ok) Add(where, path + key + " has the wrong type (" + v.type_name() + ")");
    return ok;
  }

 private:
  std::vector<std::string>& out_;
};

// The scene's Telemetry fields: present, of their type, in range and consistent.
void CheckTelemetryFields(Checker& c, const std::string& where, const json& t) {
  using T = json::value_t;
  const std::string p = "Telemetry.";
  for (const char* k : {"DurationSeconds", "MaxWaitSeconds", "PollIntervalSeconds",
                        "PostExecutionTimeoutSeconds", "DoneMarkerWaitSeconds"}) {
    if (c.Field(where, t, p, k, T::number_float) && t[k].get<double>() < 0)
      c.Add(where, p + k + " is negative");
  }
  for (const char* k :
       {"HistoryAttempts", "HistoryAttemptLimit", "SceneRetryBudget", "FrameCount"}) {
    if (c.Field(where, t, p, k, T::number_integer) && t[k].get<int64_t>() < 0)
      c.Add(where, p + k + " is negative");
  }
  for (const char* k : {"ExecutionSuccessDetected", "HistoryPostExecutionTimeoutReached",
                        "DoneMarkerDetected", "ForcedCopyTriggered"}) {
    c.Field(where, t, p, k, T::boolean);
  }
  if (c.Field(where, t, p, "pollLimit", T::string) && t.contains("HistoryAttemptLimit") &&
      t["HistoryAttemptLimit"].is_number_integer()) {
    const std::string want = PollLimit(t["HistoryAttemptLimit"].get<int>());
    if (t["pollLimit"] != want)
      c.Add(where, "Telemetry.pollLimit is \"" + Text(t["pollLimit"]) +
                       "\" but HistoryAttemptLimit=" + Text(t["HistoryAttemptLimit"]) +
                       " means \"" + want + "\"");
  }
  std::string reason;
  if (c.Field(where, t, p, "HistoryExitReason", T::string)) {
    reason = t["HistoryExitReason"];
    if (std::find(kExitReasons.begin(), kExitReasons.end(), reason) == kExitReasons.end())
      c.Add(where, "Telemetry.HistoryExitReason \"" + reason +
                       "\" is not one of success|maxWait|attemptLimit|postExecution|unknown");
  }
  const bool detected = BoolField(t, "ExecutionSuccessDetected");
  if (c.Field(where, t, p, "ExecutionSuccessAt", T::string, /*nullable=*/!detected)) {
    const std::string at = t["ExecutionSuccessAt"];
    if (at.size() < 20 || at[4] != '-' || at[10] != 'T' || at.back() != 'Z')
      c.Add(where, "Telemetry.ExecutionSuccessAt \"" + at + "\" is not an ISO 8601 UTC time");
  }
  if (reason == "postExecution" && !BoolField(t, "HistoryPostExecutionTimeoutReached"))
    c.Add(where, "HistoryExitReason=postExecution but HistoryPostExecutionTimeoutReached is false");
}

// Fallback notes, then GPU: VRAM figures may be null only when a note says why. Returns
// whether the scene has fallback notes.
bool CheckNotesAndGpu(Checker& c, const std::string& where, const json& t) {
  using T = json::value_t;
  json notes = json::array();
  if (!t.contains("System") || !t["System"].is_object()) {
    c.Add(where, "missing field Telemetry.System");
  } else if (c.Field(where, t["System"], "Telemetry.System.", "FallbackNotes", T::array)) {
    notes = t["System"]["FallbackNotes"];
    for (const auto& n : notes) {
      if (!n.is_string()) c.Add(where, "Telemetry.System.FallbackNotes holds a non-string");
    }
  }
  const bool has_notes = !notes.empty();
  if (!t.contains("GPU") || !t["GPU"].is_object()) {
    c.Add(where, "missing field Telemetry.GPU");
    return has_notes;
  }
  const json& g = t["GPU"];
  const std::string gp = "Telemetry.GPU.";
  c.Field(where, g, gp, "Name", T::string, has_notes);
  const bool b = c.Field(where, g, gp, "VramBeforeMB", T::number_float, has_notes);
  const bool a = c.Field(where, g, gp, "VramAfterMB", T::number_float, has_notes);
  const bool d = c.Field(where, g, gp, "VramDeltaMB", T::number_float, has_notes);
  if (a && b && d &&
      std::fabs(g["VramAfterMB"].get<double>() - g["VramBeforeMB"].get<double>() -
                g["VramDeltaMB"].get<double>()) > 0.11) {
    c.Add(where, "Telemetry.GPU.VramDeltaMB is not VramAfterMB - VramBeforeMB");
  }
  return has_notes;
}

// The scene directory: the forced copy's debug file, its own telemetry.json, its frames.
void CheckSceneDir(Checker& c, const std::string& where, const json& s, const json& t,
                   const std::string& id, const fs::path& run_dir) {
  if (BoolField(t, "ForcedCopyTriggered") && StrField(s, "Status") == "succeeded") {
    bool found = false;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(run_dir / id, ec)) {
      if (e.path().filename().string().rfind("forced-copy-debug-", 0) == 0) found = true;
    }
    if (!found)
      c.Add(where, "ForcedCopyTriggered but no forced-copy-debug-*.txt in the scene directory");
  }
  // The scene's own telemetry.json agrees with the metadata.
  auto own = ReadJson(run_dir / id / "telemetry.json");
  if (!own.ok()) {
    c.Add(where, "no " + (fs::path(id) / "telemetry.json").string());
  } else if ((own->is_object() ? own->value("Telemetry", json()) : json()) != t) {
    c.Add(where, "telemetry.json differs from artifact-metadata.json");
  }
  if (StrField(s, "Status") == "succeeded" && t.contains("FrameCount") &&
      t["FrameCount"].is_number_integer()) {
    int on_disk = 0;
    std::error_code ec;
    if (s.contains("Files") && s["Files"].is_array() && !s["Files"].empty()) {
      // Each collected file is in the scene directory; FrameCount counts the images among them.
      for (const auto& f : s["Files"]) {
        const std::string name = StrField(f, "Name");
        const std::string kind = StrField(f, "Kind");
        if (name.empty() || name.find('/') != std::string::npos ||
            (kind != "image" && kind != "video" && kind != "audio")) {
          c.Add(where, "Files holds " + f.dump() + ", not {Name, Kind: image|video|audio}");
          continue;
        }
        if (!fs::is_regular_file(run_dir / id / name, ec)) {
          c.Add(where, "Files lists " + name + " but the scene directory has no such file");
        } else if (kind == "image") {
          ++on_disk;
        }
      }
    } else {
      for (const auto& e : fs::directory_iterator(run_dir / id, ec)) {
        if (e.is_regular_file() && IsFrameFile(e.path())) ++on_disk;
      }
    }
    if (on_disk != t["FrameCount"].get<int>())
      c.Add(where, "FrameCount=" + Text(t["FrameCount"]) + " but " + std::to_string(on_disk) +
                       " frame files in the scene directory");
  }
}

// run-summary.txt: the scene's telemetry line with the same values.
void CheckSummaryLine(Checker& c, const std::string& where, const json& t, const std::string& id,
                      const std::string& summary, bool has_notes) {
  const std::string tag = "[Scene " + id + "] Telemetry: ";
  std::string line;
  std::istringstream in(summary);
  for (std::string l; std::getline(in, l);) {
    if (l.rfind(tag, 0) == 0) line = l;
  }
  if (line.empty()) {
    c.Add(where, "run-summary.txt has no \"" + tag + "\" line");
    return;
  }
  auto value_in_line = [&](const std::string& key) -> std::optional<std::string> {
    const std::string k =
        (line.find(": " + key + "=") != std::string::npos ? ": " : " | ") + key + "=";
    const auto pos = line.find(k);
    if (pos == std::string::npos) return std::nullopt;
    const auto start = pos + k.size();
    const auto end = line.find(" | ", start);
    return line.substr(start, end == std::string::npos ? std::string::npos : end - start);
  };
  for (const auto& k : kLineKeys) {
    auto v = value_in_line(k);
    if (!v) {
      c.Add(where, "run-summary.txt telemetry line lacks " + k + "=");
    } else if (t.contains(k) && *v != Text(t[k])) {
      c.Add(where, "run-summary.txt says " + k + "=" + *v + " but artifact-metadata.json says " +
                       Text(t[k]));
    }
  }
  for (const char* k : {"GPU", "VramBeforeMB", "VramAfterMB", "VramDeltaMB"}) {
    if (!value_in_line(k))
      c.Add(where, std::string("run-summary.txt telemetry line lacks ") + k + "=");
  }
  if (has_notes && !value_in_line("fallback"))
    c.Add(where, "has fallback notes in metadata but the summary line has no fallback= entry");
}

void CheckScene(Checker& c, const json& s, const std::string& summary, const fs::path& run_dir) {
  const std::string id = StrField(s, "SceneId");
  const std::string where = "Scene " + (id.empty() ? std::string("?") : id);
  if (id.empty()) c.Add(where, "missing field SceneId");
  // The id names the scene's directory: one that is not a scene id ("..", "/etc", "a/b") is
  // reported and its directory never read, so nothing outside the run directory is looked at.
  const bool dir_ok = IsValidId(id);
  if (!id.empty() && !dir_ok) c.Add(where, "SceneId is not a scene id ([A-Za-z0-9._-]{1,128})");
  if (!s.contains("Telemetry") || !s["Telemetry"].is_object()) {
    c.Add(where, "missing field Telemetry");
    return;
  }
  const json& t = s["Telemetry"];
  CheckTelemetryFields(c, where, t);
  const bool has_notes = CheckNotesAndGpu(c, where, t);
  if (dir_ok) CheckSceneDir(c, where, s, t, id, run_dir);
  CheckSummaryLine(c, where, t, id, summary, has_notes);
}

}  // namespace

std::vector<std::string> ValidateRun(const fs::path& run_dir) {
  std::vector<std::string> out;
  Checker c(out);
  const std::string rd = run_dir.string();
  if (!fs::is_directory(run_dir)) {
    c.Add(rd, "not a directory");
    return out;
  }
  auto meta = ReadJson(run_dir / "artifact-metadata.json");
  if (!meta.ok()) {
    c.Add(rd, meta.status().message());
    return out;
  }
  std::string summary;
  {
    std::ifstream in(run_dir / "run-summary.txt");
    if (!in) {
      c.Add(rd, "run-summary.txt is missing");
    } else {
      std::stringstream ss;
      ss << in.rdbuf();
      summary = ss.str();
      if (summary.find("\nQueue policy: ") == std::string::npos)
        c.Add("run-summary.txt", "no \"Queue policy:\" line");
    }
  }
  if (!meta->contains("Scenes") || !(*meta)["Scenes"].is_array() || (*meta)["Scenes"].empty()) {
    c.Add("artifact-metadata.json", "Scenes is missing or empty");
    return out;
  }
  if (!meta->contains("QueuePolicy") || !(*meta)["QueuePolicy"].is_object())
    c.Add("artifact-metadata.json", "missing field QueuePolicy");
  std::set<std::string> seen;
  for (const auto& s : (*meta)["Scenes"]) {
    if (!s.is_object()) {
      c.Add("artifact-metadata.json", "a Scenes entry is not an object");
      continue;
    }
    const std::string id = StrField(s, "SceneId");
    if (!id.empty() && !seen.insert(id).second) c.Add("Scene " + id, "listed twice");
    CheckScene(c, s, summary, run_dir);
  }
  return out;
}

}  // namespace scenefarm::telemetry
