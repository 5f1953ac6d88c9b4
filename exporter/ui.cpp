#include "ui.h"

#include <civetweb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "scenefarm/http_client.h"
#include "scenefarm/keys.h"
#include "scenefarm/readings.h"
#include "scenefarm/telemetry.h"

namespace scenefarm::exporter::ui {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::mutex g_mu;
UiOptions g_options;
std::shared_ptr<SharedRedis> g_redis;

// Every answer of ours carries these: the pages load nothing but their own assets, run no inline
// script, and no response is sniffed into another type or framed by another site.
const char kStrictHeaders[] =
    "Content-Security-Policy: default-src 'self'; img-src 'self'; media-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "X-Frame-Options: DENY\r\n"
    "Referrer-Policy: same-origin\r\n";

void Head(mg_connection* conn, int status, const std::string& type, uint64_t length,
          const std::string& extra) {
  mg_printf(conn,
            "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %llu\r\n%s%sConnection: "
            "close\r\n\r\n",
            status, mg_get_response_code_text(conn, status), type.c_str(),
            static_cast<unsigned long long>(length), kStrictHeaders, extra.c_str());
}

int Send(mg_connection* conn, int status, const std::string& type, const std::string& body,
         bool head_only, const std::string& extra = "") {
  Head(conn, status, type, body.size(), extra);
  if (!head_only) mg_write(conn, body.data(), body.size());
  return status;
}

int SendJson(mg_connection* conn, int status, const json& body, bool head_only) {
  return Send(conn, status, "application/json", body.dump() + "\n", head_only,
              "Cache-Control: no-store\r\n");
}

int Error(mg_connection* conn, int status, const std::string& message, bool head_only,
          const std::string& extra = "") {
  return Send(conn, status, "application/json", json{{"error", message}}.dump() + "\n", head_only,
              extra);
}

int StatusToHttp(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kFailedPrecondition:
      return 403;
    case StatusCode::kNotFound:
      return 404;
    default:
      return 500;
  }
}

bool StartsWith(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// A path resolved (symlinks followed) lies inside `root` (itself resolved).
bool Inside(const fs::path& root, const fs::path& p) {
  auto r = root.begin(), i = p.begin();
  for (; r != root.end(); ++r, ++i) {
    if (r->empty() && std::next(r) == root.end()) break;  // a trailing "" of "dir/"
    if (i == p.end() || *r != *i) return false;
  }
  return true;
}

std::string Kind(const fs::path& rel) {
  const std::string name = rel.filename().string();
  if (name == "telemetry.json") return "telemetry";
  if (name == "artifact-metadata.json") return "metadata";
  if (name == "run-summary.txt") return "summary";
  const std::string type = ContentTypeFor(rel);
  if (StartsWith(type, "image/")) return "image";
  if (StartsWith(type, "video/")) return "video";
  if (StartsWith(type, "audio/")) return "audio";
  return "other";
}

// The weak validator of a file as it is now: a rerun that rewrites a frame changes it.
std::string ETag(const struct stat& st) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "\"%llx-%llx-%lx\"", static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_mtim.tv_sec),
                static_cast<long>(st.st_mtim.tv_nsec));
  return buf;
}

// "bytes=A-B", "bytes=A-", "bytes=-N" against a file of `size` bytes: [first, last]. False for a
// range this server does not serve (several ranges, or past the end).
bool ParseRange(const std::string& h, uint64_t size, uint64_t& first, uint64_t& last) {
  if (!StartsWith(h, "bytes=") || h.find(',') != std::string::npos || size == 0) return false;
  const std::string spec = h.substr(6);
  const auto dash = spec.find('-');
  if (dash == std::string::npos) return false;
  const std::string a = spec.substr(0, dash), b = spec.substr(dash + 1);
  auto num = [](const std::string& s, uint64_t& out) {
    if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
      return false;
    out = std::stoull(s);
    return true;
  };
  if (a.empty()) {
    uint64_t n = 0;
    if (!num(b, n) || n == 0) return false;
    first = n >= size ? 0 : size - n;
    last = size - 1;
    return true;
  }
  if (!num(a, first) || first >= size) return false;
  if (b.empty()) {
    last = size - 1;
  } else if (!num(b, last) || last < first) {
    return false;
  }
  last = std::min(last, size - 1);
  return true;
}

int ServeFile(mg_connection* conn, const fs::path& file, bool head_only) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return Error(conn, 404, "not a file", head_only);
  const std::string etag = ETag(st);
  std::string extra =
      "ETag: " + etag + "\r\nCache-Control: private, no-cache\r\nAccept-Ranges: bytes\r\n";
  const std::string type = ContentTypeFor(file);
  if (type == "application/octet-stream") extra += "Content-Disposition: attachment\r\n";
  if (const char* inm = mg_get_header(conn, "If-None-Match"); inm && etag == inm) {
    mg_printf(conn, "HTTP/1.1 304 Not Modified\r\nETag: %s\r\n%sContent-Length: 0\r\n\r\n",
              etag.c_str(), kStrictHeaders);
    return 304;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error(conn, 403, "the artifacts directory is not readable here", head_only);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  uint64_t first = 0, last = size == 0 ? 0 : size - 1;
  int status = 200;
  if (const char* range = mg_get_header(conn, "Range"); range && size > 0) {
    if (!ParseRange(range, size, first, last)) {
      return Error(conn, 416, "unsatisfiable range", head_only,
                   "Content-Range: bytes */" + std::to_string(size) + "\r\n");
    }
    status = 206;
    extra += "Content-Range: bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
             std::to_string(size) + "\r\n";
  }
  const uint64_t length = size == 0 ? 0 : last - first + 1;
  Head(conn, status, type, length, extra);
  if (head_only) return status;
  in.seekg(static_cast<std::streamoff>(first));
  std::vector<char> buf(64 * 1024);
  uint64_t left = length;
  while (left > 0 && in) {
    in.read(buf.data(), static_cast<std::streamsize>(std::min<uint64_t>(left, buf.size())));
    const auto n = in.gcount();
    if (n <= 0 || mg_write(conn, buf.data(), static_cast<size_t>(n)) <= 0) break;
    left -= static_cast<uint64_t>(n);
  }
  return status;
}

// The files of a run directory, bounded; ?scene=ID keeps one scene's.
int ListFiles(mg_connection* conn, const UiOptions& o, const std::string& run,
              const std::string& scene, bool head_only) {
  constexpr size_t kMaxFiles = 10000;
  auto dir = RunDir(o.artifacts, run);
  if (!dir.ok()) return Error(conn, StatusToHttp(dir.status()), dir.status().message(), head_only);
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(fs::absolute(o.artifacts, ec), ec);
  json files = json::array();
  bool truncated = false;
  const bool exists = fs::is_directory(*dir, ec);
  if (exists) {
    fs::recursive_directory_iterator it(*dir, fs::directory_options::skip_permission_denied, ec);
    if (ec) return Error(conn, 403, "the artifacts directory is not readable here", head_only);
    std::vector<json> found;
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it.depth() >= 1) it.disable_recursion_pending();  // RUN/file, RUN/SCENE/file
      if (!it->is_regular_file(ec)) continue;
      // A symlink leading out of the artifacts directory is not listed (nor served).
      if (it->is_symlink(ec) && !Inside(base, fs::weakly_canonical(it->path(), ec))) continue;
      const fs::path rel = it->path().lexically_relative(*dir);
      const std::string scene_of = rel.has_parent_path() ? rel.begin()->string() : "";
      if (!scene.empty() && scene_of != scene) continue;
      if (rel.filename().string().find(".part") != std::string::npos) continue;
      if (found.size() >= kMaxFiles) {
        truncated = true;
        break;
      }
      found.push_back({{"path", rel.generic_string()},
                       {"scene", scene_of},
                       {"name", rel.filename().string()},
                       {"kind", Kind(rel)},
                       {"size", it->file_size(ec)}});
    }
    std::sort(found.begin(), found.end(),
              [](const json& a, const json& b) { return a["path"] < b["path"]; });
    files = std::move(found);
  }
  json body = {{"run", run}, {"exists", exists}, {"files", files}};
  if (truncated) body["truncated"] = true;
  return SendJson(conn, 200, body, head_only);
}

int Validation(mg_connection* conn, const UiOptions& o, const std::string& run, bool head_only) {
  auto dir = RunDir(o.artifacts, run);
  if (!dir.ok()) return Error(conn, StatusToHttp(dir.status()), dir.status().message(), head_only);
  std::error_code ec;
  if (!fs::exists(*dir / "artifact-metadata.json", ec))
    return SendJson(conn, 200, {{"run", run}, {"assembled", false}}, head_only);
  const auto violations = telemetry::ValidateRun(*dir);
  return SendJson(
      conn, 200,
      {{"run", run}, {"assembled", true}, {"ok", violations.empty()}, {"violations", violations}},
      head_only);
}

// RUN/SCENE/NAME when the artifacts directory does not have it: the frame NAME of the scene's
// result ("outputs": [{filename, subfolder, type}], as the worker records it) through /view of
// the ComfyUI the scene's worker drives, else of each configured instance in turn. Only names the
// result lists, only configured instances, at most view_max_bytes.
int ProxyView(mg_connection* conn, const UiOptions& o, const std::shared_ptr<SharedRedis>& redis,
              const std::string& run, const std::string& rel, const std::string& queue,
              bool head_only) {
  const auto slash = rel.find('/');
  if (redis == nullptr || o.comfyui_urls.empty() || slash == std::string::npos ||
      rel.find('/', slash + 1) != std::string::npos) {
    return Error(conn, 404, "no such file", head_only);
  }
  const std::string scene = rel.substr(0, slash), name = rel.substr(slash + 1);
  std::string scene_run, result_text, worker, readings_text;
  {
    std::lock_guard<std::mutex> lock(redis->mu);
    auto r = redis->client.Command(
        {"HMGET", keys::QueueKeys(queue).Scene(scene), "run", "result", "worker"});
    if (!r.ok() || r->elements.size() != 3) return Error(conn, 404, "no such file", head_only);
    scene_run = r->elements[0].AsString();
    result_text = r->elements[1].AsString();
    worker = r->elements[2].AsString();
    if (!worker.empty()) {
      auto w = redis->client.Command({"HGET", keys::Worker(worker), readings::kField});
      if (w.ok()) readings_text = w->AsString();
    }
  }
  if (scene_run != run) return Error(conn, 404, "no such file", head_only);
  const json result = json::parse(result_text, nullptr, false);
  const json* output = nullptr;
  if (result.is_object() && result.contains("outputs") && result["outputs"].is_array()) {
    for (const auto& out : result["outputs"]) {
      if (out.is_object() && out.value("filename", "") == name) output = &out;
    }
  }
  if (output == nullptr) return Error(conn, 404, "no such file", head_only);
  std::vector<std::string> urls;
  const json readings_doc = json::parse(readings_text, nullptr, false);
  if (readings_doc.is_object()) {
    const std::string instance = readings_doc.value("instance", "");
    if (std::find(o.comfyui_urls.begin(), o.comfyui_urls.end(), instance) != o.comfyui_urls.end())
      urls.push_back(instance);
  }
  for (const auto& u : o.comfyui_urls) {
    if (std::find(urls.begin(), urls.end(), u) == urls.end()) urls.push_back(u);
  }
  const std::string query = "/view?filename=" + http::UrlEncode(name) +
                            "&subfolder=" + http::UrlEncode(output->value("subfolder", "")) +
                            "&type=" + http::UrlEncode(output->value("type", "output"));
  std::string last_error = "no such file";
  for (const auto& u : urls) {
    http::ClientOptions co;
    co.timeout = o.view_timeout;
    co.max_body_bytes = o.view_max_bytes;
    http::Client client(u, co);
    auto r = client.Get(query);
    if (!r.ok()) {
      last_error = "ComfyUI " + u + ": " + r.status().message();
      if (r.status().code() == StatusCode::kInternal)
        return Error(conn, 502, "frame larger than the proxy limit", head_only);
      continue;
    }
    if (r->status != 200) continue;
    return Send(conn, 200, ContentTypeFor(name), r->body, head_only,
                "Cache-Control: private, no-cache\r\nX-Scenefarm-Source: comfyui\r\n");
  }
  return Error(conn, 404, last_error, head_only);
}

// The pages are one document; the browser renders the route from location.pathname.
bool IsPage(const std::string& rest) {
  if (rest.empty() || rest == "dead" || rest == "runs" || rest == "queues") return true;
  for (const char* p : {"runs/", "scenes/", "queues/"}) {
    const std::string prefix = p;
    if (StartsWith(rest, prefix) && rest.size() > prefix.size()) return true;
  }
  return false;
}

int ServeUi(mg_connection* conn, const std::string& path, bool head_only) {
  if (path == "/ui")
    return Send(conn, 308, "text/plain", "/ui/\n", head_only, "Location: /ui/\r\n");
  const std::string rest = path.substr(4);  // after "/ui/"
  std::string name = rest;
  if (IsPage(rest)) name = "index.html";
  const EmbeddedAsset* a = FindAsset(name);
  if (a == nullptr) return Send(conn, 404, "text/plain", "not found\n", head_only);
  const std::string body(reinterpret_cast<const char*>(a->data), a->size);
  std::string type = ContentTypeFor(name);
  if (type == "text/html" || type == "text/css" || type == "text/javascript")
    type += "; charset=utf-8";
  return Send(conn, 200, type, body, head_only, "Cache-Control: no-cache\r\n");
}

}  // namespace

const EmbeddedAsset* FindAsset(const std::string& name) {
  for (const EmbeddedAsset* a = kEmbeddedAssets; a->name != nullptr; ++a) {
    if (name == a->name) return a;
  }
  return nullptr;
}

UiOptions FromExporterOptions(const ExporterOptions& o) {
  UiOptions u;
  u.disabled = o.web_disable_ui;
  u.artifacts = o.artifacts_dir;
  if (!o.queues.empty()) u.default_queue = o.queues.front();
  u.comfyui_urls = o.comfyui_urls;
  u.view_timeout = o.timeout();
  return u;
}

Result<fs::path> RunDir(const fs::path& root, const std::string& run) {
  if (run.empty() || run == "." || run == ".." || run.find('/') != std::string::npos ||
      run.find('\\') != std::string::npos || run.find('\0') != std::string::npos) {
    return Status::InvalidArgument("bad run name");
  }
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(fs::absolute(root, ec), ec);
  if (ec) return Status::NotFound("no artifacts directory");
  const fs::path dir = fs::weakly_canonical(base / run, ec);
  if (ec) return Status::NotFound("no such run directory");
  if (!Inside(base, dir) || dir == base)
    return Status::FailedPrecondition("outside the artifacts directory");
  return dir;
}

Result<fs::path> ResolveRunFile(const fs::path& root, const std::string& run,
                                const std::string& rel) {
  if (rel.empty()) return Status::InvalidArgument("empty path");
  if (rel.find('\0') != std::string::npos) return Status::InvalidArgument("NUL in the path");
  if (rel.front() == '/' || rel.find('\\') != std::string::npos)
    return Status::InvalidArgument("the path must be relative to the run directory");
  size_t start = 0;
  while (start <= rel.size()) {
    const size_t end = std::min(rel.find('/', start), rel.size());
    const std::string part = rel.substr(start, end - start);
    if (part.empty() || part == "." || part == "..")
      return Status::InvalidArgument("the path may not contain '..', '.' or '//'");
    start = end + 1;
  }
  auto dir = RunDir(root, run);
  if (!dir.ok()) return dir.status();
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(fs::absolute(root, ec), ec);
  const fs::path joined = *dir / rel;
  if (!fs::exists(fs::symlink_status(joined, ec))) return Status::NotFound("no such file");
  const fs::path real = fs::weakly_canonical(joined, ec);
  if (ec) return Status::NotFound("no such file");
  // Symlinks are followed; where they lead must still be inside the artifacts directory.
  if (!Inside(base, real)) return Status::FailedPrecondition("outside the artifacts directory");
  if (!fs::exists(real, ec)) return Status::NotFound("no such file");
  return real;
}

std::string ContentTypeFor(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  static const std::pair<const char*, const char*> kTypes[] = {
      {".html", "text/html"},       {".js", "text/javascript"},    {".css", "text/css"},
      {".png", "image/png"},        {".jpg", "image/jpeg"},        {".jpeg", "image/jpeg"},
      {".webp", "image/webp"},      {".gif", "image/gif"},         {".svg", "image/svg+xml"},
      {".exr", "image/x-exr"},      {".mp4", "video/mp4"},         {".webm", "video/webm"},
      {".mkv", "video/x-matroska"}, {".mov", "video/quicktime"},   {".avi", "video/x-msvideo"},
      {".flac", "audio/flac"},      {".mp3", "audio/mpeg"},        {".wav", "audio/wav"},
      {".ogg", "audio/ogg"},        {".opus", "audio/ogg"},        {".m4a", "audio/mp4"},
      {".aac", "audio/aac"},        {".json", "application/json"}, {".txt", "text/plain"},
      {".log", "text/plain"}};
  for (const auto& [e, t] : kTypes) {
    if (ext == e) return t;
  }
  return "application/octet-stream";
}

void Configure(const UiOptions& options, std::shared_ptr<SharedRedis> redis) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_options = options;
  g_redis = std::move(redis);
}

int HandleRequest(mg_connection* conn) {
  const mg_request_info* ri = mg_get_request_info(conn);
  const std::string path = ri->local_uri ? ri->local_uri : "/";
  const bool ui = path == "/ui" || StartsWith(path, "/ui/");
  const bool runs = StartsWith(path, "/api/runs/");
  if (!ui && !runs) return 0;
  UiOptions o;
  std::shared_ptr<SharedRedis> redis;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    o = g_options;
    redis = g_redis;
  }
  // /api/runs/RUN/files[/PATH] and /api/runs/RUN/validation are ours; the rest of /api/runs/ not.
  std::string run, sub, rel;
  if (runs) {
    const std::string rest = path.substr(std::strlen("/api/runs/"));
    const auto slash = rest.find('/');
    if (slash == std::string::npos) return 0;
    run = rest.substr(0, slash);
    const std::string tail = rest.substr(slash + 1);
    if (tail == "files" || tail == "validation") {
      sub = tail;
    } else if (StartsWith(tail, "files/")) {
      sub = "file";
      rel = tail.substr(6);
    } else {
      return 0;
    }
  }
  const std::string method = ri->request_method ? ri->request_method : "";
  const bool head_only = method == "HEAD";
  if (method != "GET" && !head_only) {
    return ui ? Send(conn, 405, "text/plain", "method not allowed\n", false, "Allow: GET, HEAD\r\n")
              : Error(conn, 405, "method not allowed", false, "Allow: GET, HEAD\r\n");
  }
  if (ui) {
    if (o.disabled) return Send(conn, 404, "text/plain", "the UI is disabled\n", head_only);
    return ServeUi(conn, path, head_only);
  }
  // civetweb hands over the path decoded, with dot segments removed and ended at a decoded NUL
  // ("%00"): what is left is checked below like any other path.
  auto query = [&](const char* name) {
    char value[512] = {0};
    const char* qs = ri->query_string;
    if (qs != nullptr) mg_get_var(qs, std::strlen(qs), name, value, sizeof(value));
    return std::string(value);
  };
  if (sub == "files") return ListFiles(conn, o, run, query("scene"), head_only);
  if (sub == "validation") return Validation(conn, o, run, head_only);
  auto file = ResolveRunFile(o.artifacts, run, rel);
  const bool readable = file.ok() && ::access(file->c_str(), R_OK) == 0;
  if ((!file.ok() && file.status().code() == StatusCode::kNotFound) || (file.ok() && !readable)) {
    // Not here, or not readable by this process: the rendering ComfyUI may still have it.
    const std::string q = query("queue");
    return ProxyView(conn, o, redis, run, rel, q.empty() ? o.default_queue : q, head_only);
  }
  if (!file.ok())
    return Error(conn, StatusToHttp(file.status()), file.status().message(), head_only);
  return ServeFile(conn, *file, head_only);
}

}  // namespace scenefarm::exporter::ui
