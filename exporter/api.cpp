#include "api.h"

#include <civetweb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <set>
#include <thread>

#include "scenefarm/clock.h"
#include "scenefarm/keys.h"
#include "scenefarm/log.h"
#include "scenefarm/queue.h"
#include "scenefarm/readings.h"
#include "scenefarm/scene.h"

namespace scenefarm::exporter {
namespace {

using json = nlohmann::json;

// Bounds of one request's work.
constexpr int64_t kMaxLimit = 500;         // scenes per page
constexpr size_t kScan = 10000;            // ids of one state read when filtering or searching
constexpr size_t kDoneEvents = 20000;      // events read for the "done" state and for runs
constexpr size_t kLastHourEvents = 50000;  // events read for a queue's last hour
constexpr size_t kMaxWorkers = 200;
constexpr size_t kRunScenes = 2000;  // scenes listed for one run
constexpr size_t kMaxPurge = 100000;
constexpr size_t kEventChunk = 5000;  // stream entries per command

std::vector<std::string> Split(const std::string& path) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < path.size()) {
    const size_t slash = std::min(path.find('/', at), path.size());
    if (slash > at) out.push_back(path.substr(at, slash - at));
    at = slash + 1;
  }
  return out;
}

std::map<std::string, std::string> Fields(const redis::Value& hash) {
  std::map<std::string, std::string> f;
  for (size_t i = 0; i + 1 < hash.elements.size(); i += 2)
    f[hash.elements[i].AsString()] = hash.elements[i + 1].AsString();
  return f;
}

int64_t ToInt(const std::string& s, int64_t fallback = 0) {
  int64_t v = fallback;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() ? v : fallback;
}

// "30s", "15m", "12h", "7d" (the CLI's durations); nullopt when malformed.
std::optional<int64_t> DurationMs(const std::string& s) {
  if (s.size() < 2) return std::nullopt;
  int64_t n = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size() - 1, n);
  if (r.ec != std::errc() || r.ptr != s.data() + s.size() - 1 || n < 0) return std::nullopt;
  const char unit = s.back();
  const int64_t mult = unit == 's'   ? 1
                       : unit == 'm' ? 60
                       : unit == 'h' ? 3600
                       : unit == 'd' ? 86400
                                     : 0;
  if (mult == 0 || n > (int64_t{1} << 40)) return std::nullopt;
  return n * mult * 1000;
}

std::string Hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += d[p[i] >> 4];
    out += d[p[i] & 15];
  }
  return out;
}

// The events of a stream entry as a map.
std::map<std::string, std::string> EventFields(const redis::Value& entry) {
  if (entry.elements.size() < 2) return {};
  return Fields(entry.elements[1]);
}

// A stream newest first, from its end down to min_id ("-": its start), at most `max` entries,
// kEventChunk per command: Redis serves its other clients (heartbeats) in between.
Result<std::vector<redis::Value>> NewestEvents(redis::Client& c, const std::string& key,
                                               const std::string& min_id, size_t max) {
  std::vector<redis::Value> out;
  std::string end = "+";
  while (out.size() < max) {
    const size_t n = std::min(kEventChunk, max - out.size());
    auto r = c.Command({"XREVRANGE", key, end, min_id, "COUNT", std::to_string(n)});
    if (!r.ok()) return r.status();
    if (r->is_error()) return Status::Internal("XREVRANGE: " + r->str);
    const size_t got = r->elements.size();
    for (auto& e : r->elements)
      out.push_back(std::move(e));
    if (got < n || out.back().elements.empty()) break;
    end = "(" + out.back().elements[0].AsString();
  }
  return out;
}

// The ids of a state's scenes, bounded: the first kScan of its sorted set, or for "done" the
// scenes of the succeeded/cancelled events among the newest kDoneEvents (newest first).
// *truncated: there were more to read.
Result<std::vector<std::string>> StateIds(redis::Client& c, const keys::QueueKeys& k,
                                          const std::string& state, bool* truncated) {
  std::vector<std::string> ids;
  if (state == "done") {
    auto ev = NewestEvents(c, k.Events(), "-", kDoneEvents);
    if (!ev.ok()) return ev.status();
    *truncated = ev->size() >= kDoneEvents;
    std::set<std::string> seen;
    for (const auto& e : *ev) {
      auto f = EventFields(e);
      if ((f["event"] == "succeeded" || f["event"] == "cancelled") &&
          seen.insert(f["scene"]).second)
        ids.push_back(f["scene"]);
    }
    return ids;
  }
  auto r = c.Pipeline(
      {{"ZCARD", k.State(state)}, {"ZRANGE", k.State(state), "0", std::to_string(kScan - 1)}});
  if (!r.ok()) return r.status();
  *truncated = (*r)[0].integer > static_cast<int64_t>(kScan);
  for (const auto& v : (*r)[1].elements)
    ids.push_back(v.str);
  return ids;
}

// The run of each scene ("" when its record is gone), one pipelined round trip.
Result<std::vector<std::string>> RunsOf(redis::Client& c, const keys::QueueKeys& k,
                                        const std::vector<std::string>& ids) {
  std::vector<std::string> runs;
  if (ids.empty()) return runs;
  std::vector<std::vector<std::string>> cmds;
  for (const auto& id : ids)
    cmds.push_back({"HGET", k.Scene(id), "run"});
  auto r = c.Pipeline(cmds);
  if (!r.ok()) return r.status();
  for (const auto& v : *r)
    runs.push_back(v.AsString());
  return runs;
}

// A Queue for `name` with the default options: cheap, one per request (it keeps no state).
queue::Queue QueueNamed(redis::Client& c, const std::string& name, const Clock& clock) {
  queue::QueueOptions qo;
  qo.name = name;
  return queue::Queue(c, qo, clock);
}

// `jobs show --json` of each scene without its history, plus enqueued_at_ms and priority, in
// order; a scene whose record is gone (expired, purged meanwhile) is left out.
Result<json> SceneRows(redis::Client& c, const keys::QueueKeys& k,
                       const std::vector<std::string>& ids) {
  json rows = json::array();
  if (ids.empty()) return rows;
  std::vector<std::vector<std::string>> cmds;
  for (const auto& id : ids)
    cmds.push_back({"HMGET", k.Scene(id), "run", "state", "attempts", "failures", "reason",
                    "worker", "enqueued_at", "priority"});
  auto r = c.Pipeline(cmds);
  if (!r.ok()) return r.status();
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& h = (*r)[i].elements;
    if (h.size() < 8 || h[1].is_nil()) continue;
    queue::SceneInfo s;
    s.id = ids[i];
    s.run = h[0].AsString();
    s.state = h[1].AsString();
    s.attempts = h[2].AsInt();
    s.failures = h[3].AsInt();
    s.reason = h[4].AsString();
    s.worker = h[5].AsString();
    json j = s.ToJson();
    j.erase("history");
    j["enqueued_at_ms"] = h[6].AsInt();
    j["priority"] = h[7].AsInt();
    rows.push_back(std::move(j));
  }
  return rows;
}

}  // namespace

std::string BasicAuthUser(const char* header) {
  if (header == nullptr) return "";
  const std::string h = header;
  if (h.rfind("Basic ", 0) != 0) return "";
  const std::string pair = Base64Decode(h.substr(6));
  const auto colon = pair.find(':');
  return colon == std::string::npos ? "" : pair.substr(0, colon);
}

ComfyUiSeen& LastComfyUiSeen() {
  static ComfyUiSeen seen;
  return seen;
}

struct Api::Request {
  mg_connection* conn = nullptr;
  std::string method, path, query, user;
  const mg_request_info* info = nullptr;
  SystemClock clock;

  std::string Param(const char* name) const {
    if (query.empty()) return "";
    std::string buf(query.size() + 1, '\0');
    const int n = mg_get_var(query.c_str(), query.size(), name, buf.data(), buf.size());
    return n < 0 ? "" : buf.substr(0, static_cast<size_t>(n));
  }
  bool HasParam(const char* name) const {
    if (query.empty()) return false;
    std::string buf(query.size() + 1, '\0');
    return mg_get_var(query.c_str(), query.size(), name, buf.data(), buf.size()) >= 0;
  }
  std::string Header(const char* name) const {
    const char* v = mg_get_header(conn, name);
    return v ? v : "";
  }
  int Reply(int code, const json& body, const std::string& extra = "") const {
    const std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
              "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%s"
              "Connection: close\r\n\r\n",
              code, mg_get_response_code_text(conn, code), text.size(), extra.c_str());
    mg_write(conn, text.data(), text.size());
    return code;
  }
  int Error(int code, const std::string& message) const {
    return Reply(code, json{{"error", message}});
  }
  // A queue operation that failed: 503 when Redis did not answer (a client may try again);
  // 500 when a queue script refused it (kInternal: "ERR scenefarm: ...", e.g. a bad
  // sf:doc_storage), which asks an operator, not a retry.
  int QueueError(const std::string& what, const Status& s) const {
    return Error(s.code() == StatusCode::kInternal ? 500 : 503, what + s.message());
  }
  // 405 unless the method is `allowed`; 0 when it is.
  int Allow(const char* allowed) const {
    if (method == allowed) return 0;
    return Reply(405, json{{"error", "method " + method + " not allowed here; use " + allowed}},
                 std::string("Allow: ") + allowed + "\r\n");
  }
  // ?name=N within [min, max]; def when absent. false (400 sent) when malformed.
  bool IntParam(const char* name, int64_t def, int64_t min, int64_t max, int64_t* out,
                int* code) const {
    *out = def;
    if (!HasParam(name)) return true;
    const std::string s = Param(name);
    int64_t v = 0;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size() || v < min || v > max) {
      *code =
          Error(400, std::string(name) + ": must be a whole number from " + std::to_string(min) +
                         " to " + std::to_string(max) + ", got '" + s + "'");
      return false;
    }
    *out = v;
    return true;
  }
};

Api::Api(const ExporterOptions& options, const WebConfig& web)
    : options_(options), users_configured_(!web.users.empty()), tls_(web.tls()), redis_([&] {
        redis::Options ro;
        ro.url = options.redis_url;
        ro.connect_timeout = options.timeout();
        ro.command_timeout = options.timeout();
        return ro;
      }()) {
  unsigned char key[32];
  if (RAND_bytes(key, sizeof(key)) != 1) {
    // Never a guessable secret: without randomness no token can be right (actions refused).
    secret_.clear();
  } else {
    secret_.assign(reinterpret_cast<char*>(key), sizeof(key));
  }
  OPENSSL_cleanse(key, sizeof(key));
}

Api::~Api() = default;

std::string Api::CsrfToken(const std::string& user) const {
  if (secret_.empty()) return "";
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const std::string msg = "scenefarm-csrf:" + user;
  if (HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
           reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len) == nullptr)
    return "";
  return Hex(mac, len);
}

int Api::Handle(mg_connection* conn, const std::string& user) {
  Request req;
  req.conn = conn;
  req.info = mg_get_request_info(conn);
  req.method = req.info->request_method ? req.info->request_method : "GET";
  req.path = req.info->local_uri ? req.info->local_uri : "/api";
  req.query = req.info->query_string ? req.info->query_string : "";
  req.user = user;
  // civetweb's worker threads have small stacks (about 100 KiB); a request's JSON (a scene
  // document, an enqueue body) is parsed and written on a thread with the default stack, while
  // the connection's thread waits.
  int code = 500;
  std::thread worker([&] {
    try {
      code = Route(req);
    } catch (const std::exception& e) {
      log::Error("api_failed", {{"path", req.path}, {"error", e.what()}});
      code = req.Error(500, std::string("internal error: ") + e.what());
    }
  });
  worker.join();
  return code;
}

int Api::Route(Request& req) {
  const auto seg = Split(req.path);  // seg[0] == "api"
  const size_t n = seg.size();
  int code = 0;
  if (n == 2 && seg[1] == "queues") return (code = req.Allow("GET")) ? code : Queues(req);
  if (n == 4 && seg[1] == "queues" && seg[3] == "scenes")
    return (code = req.Allow("GET")) ? code : Scenes(req, seg[2]);
  if (n == 4 && seg[1] == "queues" &&
      (seg[3] == "pause" || seg[3] == "resume" || seg[3] == "purge"))
    return (code = req.Allow("POST")) ? code : QueueAction(req, seg[2], seg[3]);
  if (n == 2 && seg[1] == "scenes") return (code = req.Allow("POST")) ? code : Enqueue(req);
  if (n == 3 && seg[1] == "scenes") return (code = req.Allow("GET")) ? code : GetScene(req, seg[2]);
  if (n == 4 && seg[1] == "scenes" && (seg[3] == "cancel" || seg[3] == "retry"))
    return (code = req.Allow("POST")) ? code : SceneAction(req, seg[2], seg[3]);
  if (n == 2 && seg[1] == "runs") return (code = req.Allow("GET")) ? code : Runs(req);
  if (n == 3 && seg[1] == "runs") return (code = req.Allow("GET")) ? code : GetRun(req, seg[2]);
  if (n == 2 && seg[1] == "workers") return (code = req.Allow("GET")) ? code : Workers(req);
  if (n == 2 && seg[1] == "comfyui") return (code = req.Allow("GET")) ? code : ComfyUi(req);
  if (n == 2 && seg[1] == "csrf") {
    if ((code = req.Allow("GET"))) return code;
    // actions_enabled: would this user's actions be taken (RefuseAction's first three checks),
    // so that the pages show buttons only where a click can work.
    const bool enabled = options_.web_enable_actions && users_configured_ && !req.user.empty();
    return req.Reply(200, json{{"token", CsrfToken(req.user)},
                               {"header", "X-Scenefarm-CSRF"},
                               {"actions_enabled", enabled}});
  }
  return req.Error(404, "no such endpoint: " + req.path + " (see docs/api.md)");
}

int Api::KnownQueue(Request& req, const std::string& queue) {
  if (!IsValidId(queue)) return req.Error(400, "queue: must match [A-Za-z0-9._-]{1,128}");
  if (std::find(options_.queues.begin(), options_.queues.end(), queue) != options_.queues.end())
    return 0;
  auto r = redis_.client.Command({"SISMEMBER", keys::kQueues, queue});
  if (!r.ok()) return req.Error(503, "redis: " + r.status().message());
  if (r->integer != 1) return req.Error(404, "no queue '" + queue + "'");
  return 0;
}

int Api::QueueParam(Request& req, std::string* queue) {
  *queue = req.HasParam("queue")     ? req.Param("queue")
           : options_.queues.empty() ? std::string("scenes")
                                     : options_.queues.front();
  return KnownQueue(req, *queue);
}

int Api::Queues(Request& req) {
  std::lock_guard<std::mutex> lock(redis_.mu);
  auto names = QueuesToReport(redis_.client, options_.queues);
  if (!names.ok()) return req.Error(503, "redis: " + names.status().message());
  json out = json::array();
  for (const auto& name : *names) {
    queue::Queue q = QueueNamed(redis_.client, name, req.clock);
    auto st = q.GetStatus(options_.live_window());
    if (!st.ok()) return req.Error(503, "redis: " + st.status().message());
    json j = st->ToJson();
    auto now = q.TimeMs();
    if (!now.ok()) return req.Error(503, "redis: " + now.status().message());
    // The last hour from the queue's event stream (bounded: its newest kLastHourEvents).
    auto ev = NewestEvents(redis_.client, keys::QueueKeys(name).Events(),
                           std::to_string(*now - 3600000), kLastHourEvents);
    if (!ev.ok()) return req.Error(503, "redis: " + ev.status().message());
    int64_t succeeded = 0, failed = 0, dead = 0, cancelled = 0;
    for (const auto& e : *ev) {
      const auto f = EventFields(e);
      const auto it = f.find("event");
      if (it == f.end()) continue;
      if (it->second == "succeeded") ++succeeded;
      if (it->second == "retried" || it->second == "dead_lettered") ++failed;
      if (it->second == "dead_lettered") ++dead;
      if (it->second == "cancelled") ++cancelled;
    }
    j["last_hour"] = {{"succeeded", succeeded},
                      {"failed", failed},
                      {"dead_lettered", dead},
                      {"cancelled", cancelled},
                      {"truncated", ev->size() >= kLastHourEvents}};
    out.push_back(std::move(j));
  }
  return req.Reply(200, json{{"queues", out}});
}

int Api::Scenes(Request& req, const std::string& queue) {
  static const std::set<std::string> kStates = {"pending", "delayed", "leased", "dead", "done"};
  const std::string state = req.HasParam("state") ? req.Param("state") : "pending";
  if (!kStates.count(state))
    return req.Error(400,
                     "state: one of pending, delayed, leased, dead, done; got '" + state + "'");
  int code = 0;
  int64_t limit = 0, offset = 0;
  if (!req.IntParam("limit", 50, 1, kMaxLimit, &limit, &code)) return code;
  if (!req.IntParam("offset", 0, 0, int64_t{1} << 40, &offset, &code)) return code;
  const std::string run = req.Param("run");
  const std::string search = req.Param("q");
  std::lock_guard<std::mutex> lock(redis_.mu);
  if ((code = KnownQueue(req, queue))) return code;
  const keys::QueueKeys k(queue);
  auto& c = redis_.client;
  const bool filtered = !run.empty() || !search.empty();
  std::vector<std::string> ids;
  int64_t total = 0;
  bool truncated = false;
  if (state != "done" && !filtered) {
    // One page straight from the state's sorted set.
    auto r = c.Pipeline(
        {{"ZCARD", k.State(state)},
         {"ZRANGE", k.State(state), std::to_string(offset), std::to_string(offset + limit - 1)}});
    if (!r.ok()) return req.Error(503, "redis: " + r.status().message());
    total = (*r)[0].integer;
    for (const auto& v : (*r)[1].elements)
      ids.push_back(v.str);
  } else {
    // Candidates (bounded), filtered by run / search, then the page.
    auto cand = StateIds(c, k, state, &truncated);
    if (!cand.ok()) return req.Error(503, "redis: " + cand.status().message());
    std::vector<std::string> runs(cand->size());
    if (filtered) {
      auto r = RunsOf(c, k, *cand);
      if (!r.ok()) return req.Error(503, "redis: " + r.status().message());
      runs = std::move(r).value();
    }
    std::vector<std::string> match;
    for (size_t i = 0; i < cand->size(); ++i) {
      const std::string& id = (*cand)[i];
      if (!run.empty() && runs[i] != run) continue;
      if (!search.empty() && id.find(search) == std::string::npos &&
          runs[i].find(search) == std::string::npos)
        continue;
      match.push_back(id);
    }
    total = static_cast<int64_t>(match.size());
    for (int64_t i = offset; i < total && i < offset + limit; ++i)
      ids.push_back(match[static_cast<size_t>(i)]);
  }
  auto rows = SceneRows(c, k, ids);
  if (!rows.ok()) return req.Error(503, "redis: " + rows.status().message());
  const json& scenes = *rows;
  json out = {{"queue", queue},   {"state", state}, {"total", total},
              {"offset", offset}, {"limit", limit}, {"scenes", scenes}};
  if (filtered || state == "done") out["truncated"] = truncated;
  return req.Reply(200, out);
}

int Api::GetScene(Request& req, const std::string& id) {
  std::string queue;
  std::lock_guard<std::mutex> lock(redis_.mu);
  if (int code = QueueParam(req, &queue)) return code;
  if (!IsValidId(id)) return req.Error(404, "no scene '" + id + "' in queue " + queue);
  queue::Queue q = QueueNamed(redis_.client, queue, req.clock);
  auto info = q.Show(id);
  if (!info.ok()) {
    if (info.status().code() == StatusCode::kNotFound)
      return req.Error(404, info.status().message());
    return req.Error(503, "redis: " + info.status().message());
  }
  json j = info->ToJson();
  j["queue"] = queue;
  j["doc"] = info->doc.is_discarded() ? json() : info->doc;
  return req.Reply(200, j);
}

namespace {

// A run's record as the API shows it; leased and delayed counted from the states' sets.
json RunJson(const std::string& run, const std::map<std::string, std::string>& f, int64_t leased,
             int64_t delayed) {
  auto get = [&](const char* k) {
    const auto it = f.find(k);
    return it == f.end() ? int64_t{0} : ToInt(it->second);
  };
  const int64_t total = get("total"), succeeded = get("succeeded"), dead = get("dead"),
                cancelled = get("cancelled");
  const int64_t open = std::max<int64_t>(0, total - succeeded - dead - cancelled);
  return {{"run", run},
          {"total", total},
          {"succeeded", succeeded},
          {"dead", dead},
          {"cancelled", cancelled},
          {"pending", std::max<int64_t>(0, open - leased - delayed)},
          {"leased", leased},
          {"delayed", delayed},
          {"finished", total > 0 && open == 0}};
}

// Per run: how many of its scenes are leased and delayed (both sets are small: leases are
// bounded by the workers, delays by the failures of the last minutes; read up to kScan each).
Result<std::map<std::string, std::pair<int64_t, int64_t>>> InFlight(redis::Client& c,
                                                                    const keys::QueueKeys& k) {
  auto r = c.Pipeline({{"ZRANGE", k.Leased(), "0", std::to_string(kScan - 1)},
                       {"ZRANGE", k.Delayed(), "0", std::to_string(kScan - 1)}});
  if (!r.ok()) return r.status();
  std::vector<std::vector<std::string>> cmds;
  std::vector<int> which;
  for (int s = 0; s < 2; ++s) {
    for (const auto& v : (*r)[s].elements) {
      cmds.push_back({"HGET", k.Scene(v.str), "run"});
      which.push_back(s);
    }
  }
  std::map<std::string, std::pair<int64_t, int64_t>> out;
  if (cmds.empty()) return out;
  auto h = c.Pipeline(cmds);
  if (!h.ok()) return h.status();
  for (size_t i = 0; i < cmds.size(); ++i) {
    auto& p = out[(*h)[i].AsString()];
    (which[i] == 0 ? p.first : p.second) += 1;
  }
  return out;
}

}  // namespace

int Api::Runs(Request& req) {
  std::string queue;
  std::lock_guard<std::mutex> lock(redis_.mu);
  if (int code = QueueParam(req, &queue)) return code;
  const keys::QueueKeys k(queue);
  auto& c = redis_.client;
  // The runs: those not finished, those waiting for assembly, and those seen in the newest
  // kDoneEvents events (a finished run's record lives for the retention period; there is no
  // index of all of them, so older finished runs are not listed).
  auto r = c.Pipeline({{"SMEMBERS", k.Runs()}, {"SMEMBERS", k.RunsFinished()}});
  if (!r.ok()) return req.Error(503, "redis: " + r.status().message());
  auto ev = NewestEvents(c, k.Events(), "-", kDoneEvents);
  if (!ev.ok()) return req.Error(503, "redis: " + ev.status().message());
  std::vector<std::string> runs;
  std::set<std::string> seen;
  for (int s = 0; s < 2; ++s)
    for (const auto& v : (*r)[s].elements)
      if (seen.insert(v.str).second) runs.push_back(v.str);
  for (const auto& e : *ev) {
    auto f = EventFields(e);
    if (!f["run"].empty() && seen.insert(f["run"]).second) runs.push_back(f["run"]);
  }
  auto inflight = InFlight(c, k);
  if (!inflight.ok()) return req.Error(503, "redis: " + inflight.status().message());
  json out = json::array();
  if (!runs.empty()) {
    std::vector<std::vector<std::string>> cmds;
    for (const auto& run : runs)
      cmds.push_back({"HGETALL", k.Run(run)});
    auto h = c.Pipeline(cmds);
    if (!h.ok()) return req.Error(503, "redis: " + h.status().message());
    for (size_t i = 0; i < runs.size(); ++i) {
      const auto f = Fields((*h)[i]);
      if (f.empty()) continue;  // expired
      const auto p = (*inflight)[runs[i]];
      out.push_back(RunJson(runs[i], f, p.first, p.second));
    }
  }
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return a["run"].get<std::string>() < b["run"].get<std::string>();
  });
  return req.Reply(200, json{{"queue", queue}, {"runs", out}});
}

int Api::GetRun(Request& req, const std::string& run) {
  std::string queue;
  std::lock_guard<std::mutex> lock(redis_.mu);
  if (int code = QueueParam(req, &queue)) return code;
  if (!IsValidId(run)) return req.Error(404, "no run '" + run + "' in queue " + queue);
  const keys::QueueKeys k(queue);
  auto& c = redis_.client;
  auto h = c.Command({"HGETALL", k.Run(run)});
  if (!h.ok()) return req.Error(503, "redis: " + h.status().message());
  const auto f = Fields(*h);
  if (f.empty()) return req.Error(404, "no run '" + run + "' in queue " + queue);
  auto inflight = InFlight(c, k);
  if (!inflight.ok()) return req.Error(503, "redis: " + inflight.status().message());
  const auto p = (*inflight)[run];
  json out = RunJson(run, f, p.first, p.second);
  out["queue"] = queue;
  // Its scenes, from each state (bounded scans) and the newest finished ones.
  std::vector<std::string> ids;
  std::set<std::string> seen;
  bool truncated = false;
  for (const char* state : {"leased", "delayed", "pending", "dead", "done"}) {
    bool more = false;
    auto cand = StateIds(c, k, state, &more);
    if (!cand.ok()) return req.Error(503, "redis: " + cand.status().message());
    auto runs = RunsOf(c, k, *cand);
    if (!runs.ok()) return req.Error(503, "redis: " + runs.status().message());
    truncated = truncated || more;
    for (size_t i = 0; i < cand->size(); ++i) {
      if ((*runs)[i] != run || !seen.insert((*cand)[i]).second) continue;
      if (ids.size() >= kRunScenes) {
        truncated = true;
        break;
      }
      ids.push_back((*cand)[i]);
    }
  }
  auto rows = SceneRows(c, k, ids);
  if (!rows.ok()) return req.Error(503, "redis: " + rows.status().message());
  const json& scenes = *rows;
  out["scenes"] = scenes;
  out["scenes_truncated"] = truncated;
  return req.Reply(200, out);
}

int Api::Workers(Request& req) {
  std::lock_guard<std::mutex> lock(redis_.mu);
  auto& c = redis_.client;
  auto r = c.Pipeline(
      {{"TIME"},
       {"ZREVRANGE", keys::kWorkers, "0", std::to_string(kMaxWorkers - 1), "WITHSCORES"}});
  if (!r.ok()) return req.Error(503, "redis: " + r.status().message());
  const auto& t = (*r)[0].elements;
  const int64_t now_ms = t.size() == 2 ? t[0].AsInt() * 1000 + t[1].AsInt() / 1000 : 0;
  std::vector<std::pair<std::string, int64_t>> ids;
  std::vector<std::vector<std::string>> cmds;
  const auto& w = (*r)[1].elements;
  for (size_t i = 0; i + 1 < w.size(); i += 2) {
    ids.emplace_back(w[i].str, ToInt(w[i + 1].AsString()));
    cmds.push_back({"HGETALL", keys::Worker(w[i].str)});
  }
  json out = json::array();
  if (!cmds.empty()) {
    auto h = c.Pipeline(cmds);
    if (!h.ok()) return req.Error(503, "redis: " + h.status().message());
    for (size_t i = 0; i < ids.size(); ++i) {
      auto f = Fields((*h)[i]);
      const double age = static_cast<double>(now_ms - ids[i].second) / 1000.0;
      const bool live = age * 1000.0 <= static_cast<double>(options_.live_window().count());
      const bool busy = f["busy"] == "1";
      json queues = json::parse(f["queues"], nullptr, false);
      json paused = json::parse(f["paused_queues"], nullptr, false);
      if (!queues.is_array()) queues = json::array();
      json j = {{"id", ids[i].first},
                {"host", f["host"]},
                {"queues", queues},
                {"busy", busy},
                {"scene", busy ? f["scene"] : ""},
                {"scenes", json::array()},
                {"state", !live  ? "gone"
                          : busy ? "busy"
                                 : "idle"},
                {"heartbeat_age_seconds", age},
                {"paused", paused.is_array() ? paused : json::array()}};
      if (!f[readings::kField].empty()) {
        auto doc =
            readings::HostReadings::FromJson(json::parse(f[readings::kField], nullptr, false));
        if (doc.ok()) {
          json rj = doc->ToJson();
          j["gpu"] = {{"instance", rj.value("instance", "")},
                      {"gpus", rj.value("gpus", json::array())},
                      {"error", rj.value("gpu_error", "")}};
          j["disks"] = rj.value("disks", json::array());
        }
      }
      out.push_back(std::move(j));
    }
    // The scenes each holds: its leases in each of its queues (sf:{Q}:wl:<worker>).
    std::vector<std::vector<std::string>> held;
    std::vector<size_t> whose;
    for (size_t i = 0; i < out.size(); ++i) {
      for (const auto& q : out[i]["queues"]) {
        if (!q.is_string() || !IsValidId(q.get<std::string>())) continue;
        held.push_back(
            {"SMEMBERS", keys::QueueKeys(q.get<std::string>()).WorkerLeases(ids[i].first)});
        whose.push_back(i);
      }
    }
    if (!held.empty()) {
      auto l = c.Pipeline(held);
      if (!l.ok()) return req.Error(503, "redis: " + l.status().message());
      for (size_t n = 0; n < held.size(); ++n)
        for (const auto& v : (*l)[n].elements)
          out[whose[n]]["scenes"].push_back(v.AsString());
    }
  }
  return req.Reply(200, json{{"workers", out}});
}

int Api::ComfyUi(Request& req) {
  ComfyUiSeen& seen = LastComfyUiSeen();
  std::lock_guard<std::mutex> lock(seen.mu);
  json instances = seen.instances;
  if (seen.at_ms == 0) {
    // No scrape yet: the configured instances, not yet seen.
    for (const auto& url : options_.comfyui_urls)
      instances.push_back(
          {{"url", url}, {"up", nullptr}, {"queue_running", nullptr}, {"queue_pending", nullptr}});
  }
  return req.Reply(200, json{{"instances", instances}, {"seen_at_ms", seen.at_ms}});
}

int Api::RefuseAction(Request& req) {
  if (!options_.web_enable_actions)
    return req.Error(403, "actions are disabled (start the exporter with --web.enable-actions)");
  if (!users_configured_) return req.Error(403, "actions need basic_auth_users in the web config");
  if (req.user.empty()) return req.Error(403, "actions need an authenticated user");
  const std::string host = req.Header("Host");
  const std::string self = std::string(tls_ ? "https" : "http") + "://" + host;
  const std::string origin = req.Header("Origin");
  if (!origin.empty()) {
    if (host.empty() || origin != self)
      return req.Error(403, "cross-origin request refused: Origin " + origin + " is not " + self);
  } else if (const std::string referer = req.Header("Referer"); !referer.empty()) {
    if (host.empty() || (referer != self && referer.rfind(self + "/", 0) != 0))
      return req.Error(403, "cross-origin request refused: Referer is not of " + self);
  }
  const std::string token = req.Header("X-Scenefarm-CSRF");
  const std::string want = CsrfToken(req.user);
  if (token.empty() || want.empty() || token.size() != want.size() ||
      CRYPTO_memcmp(token.data(), want.data(), want.size()) != 0)
    return req.Error(403, "missing or wrong X-Scenefarm-CSRF header (its token: GET /api/csrf)");
  return 0;
}

int Api::Enqueue(Request& req) {
  if (int code = RefuseAction(req)) return code;
  std::string queue;
  {
    std::lock_guard<std::mutex> lock(redis_.mu);
    if (int code = QueueParam(req, &queue)) return code;
  }
  std::optional<std::string> run;
  if (req.HasParam("run")) {
    run = req.Param("run");
    if (!IsValidId(*run)) return req.Error(400, "run: must match [A-Za-z0-9._-]{1,128}");
  }
  int code = 0;
  int64_t budget = 0;
  if (!req.IntParam("retry_budget", 1, 0, 100, &budget, &code)) return code;
  // The body, up to the limit: a larger one is refused before it is read whole.
  const size_t max_body = options_.web_max_body_bytes;
  std::vector<char> buf(65536);
  if (req.info->content_length > 0 && static_cast<size_t>(req.info->content_length) > max_body) {
    // Read (and drop) up to 1 MiB of it first, so that a client still sending gets the answer
    // instead of a reset connection.
    for (size_t dropped = 0; dropped < (size_t{1} << 20);) {
      const int n = mg_read(req.conn, buf.data(), buf.size());
      if (n <= 0) break;
      dropped += static_cast<size_t>(n);
    }
    return req.Error(413, "body is " + std::to_string(req.info->content_length) +
                              " bytes, over the limit of " + std::to_string(max_body) +
                              " (--web.max-body-bytes)");
  }
  std::string body;
  for (;;) {
    const int n = mg_read(req.conn, buf.data(), buf.size());
    if (n <= 0) break;
    body.append(buf.data(), static_cast<size_t>(n));
    if (body.size() > max_body)
      return req.Error(413, "body over the limit of " + std::to_string(max_body) +
                                " bytes (--web.max-body-bytes)");
  }
  std::vector<queue::EnqueueDoc> docs;
  Status parsed = ForEachScene(body, run, options_.max_scene_bytes, [&](scenefarm::Scene&& s) {
    docs.push_back(queue::ToEnqueueDoc(std::move(s)));
    return Status::Ok();
  });
  if (!parsed.ok()) {
    const bool too_big = parsed.message().find("over the limit of") != std::string::npos;
    return req.Error(too_big ? 413 : 400, parsed.message() + " (nothing enqueued)");
  }
  if (docs.empty()) return req.Error(400, "body: no scene (a JSON object, array or JSON lines)");
  std::lock_guard<std::mutex> lock(redis_.mu);
  queue::QueueOptions qo;
  qo.name = queue;
  qo.default_retry_budget = static_cast<int>(budget);
  queue::Queue q(redis_.client, qo, req.clock);
  auto r = q.EnqueueDocs(docs, "api:" + req.user);
  if (!r.ok()) return req.QueueError("enqueue: ", r.status());
  json created = json::array(), existing = json::array();
  for (size_t i = 0; i < docs.size(); ++i)
    ((*r)[i] ? created : existing).push_back(docs[i].id);
  log::Info("api_enqueue", {{"queue", queue},
                            {"by", "api:" + req.user},
                            {"enqueued", created.size()},
                            {"existing", existing.size()}});
  return req.Reply(200, json{{"queue", queue}, {"enqueued", created}, {"existing", existing}});
}

int Api::SceneAction(Request& req, const std::string& id, const std::string& action) {
  if (int code = RefuseAction(req)) return code;
  std::string queue;
  std::lock_guard<std::mutex> lock(redis_.mu);
  if (int code = QueueParam(req, &queue)) return code;
  if (!IsValidId(id)) return req.Error(404, "no scene '" + id + "' in queue " + queue);
  queue::Queue q = QueueNamed(redis_.client, queue, req.clock);
  const std::string by = "api:" + req.user;
  if (action == "cancel") {
    auto r = q.Cancel(id, by);
    if (!r.ok()) {
      if (r.status().code() == StatusCode::kNotFound) return req.Error(404, r.status().message());
      return req.QueueError("", r.status());
    }
    const std::string result = *r == "leased" ? "cancel requested (its worker stops it)"
                               : *r == "succeeded" || *r == "cancelled"
                                   ? "already " + *r
                                   : "cancelled (was " + *r + ")";
    return req.Reply(
        200, json{{"id", id}, {"queue", queue}, {"was", *r}, {"result", result}, {"by", by}});
  }
  Status s = q.Retry(id, by);
  if (!s.ok()) {
    if (s.code() == StatusCode::kNotFound) return req.Error(404, s.message());
    if (s.code() == StatusCode::kFailedPrecondition) return req.Error(409, s.message());
    return req.QueueError("", s);
  }
  return req.Reply(200,
                   json{{"id", id}, {"queue", queue}, {"result", "back to pending"}, {"by", by}});
}

int Api::QueueAction(Request& req, const std::string& queue, const std::string& action) {
  if (int code = RefuseAction(req)) return code;
  std::optional<int64_t> older;
  if (action == "purge") {
    const std::string o = req.HasParam("older_than") ? req.Param("older_than") : "0s";
    older = DurationMs(o);
    if (!older) return req.Error(400, "older_than: a duration like 30m, 12h, 7d; got '" + o + "'");
  }
  std::lock_guard<std::mutex> lock(redis_.mu);
  if (int code = KnownQueue(req, queue)) return code;
  queue::Queue q = QueueNamed(redis_.client, queue, req.clock);
  const std::string by = "api:" + req.user;
  if (action == "purge") {
    auto now = q.TimeMs();
    if (!now.ok()) return req.Error(503, "redis: " + now.status().message());
    auto ids = q.PurgeDead(*now - *older, kMaxPurge, by);
    if (!ids.ok()) return req.QueueError("purge: ", ids.status());
    return req.Reply(200, json{{"queue", queue}, {"purged", *ids}, {"by", by}});
  }
  const bool pause = action == "pause";
  auto changed = pause ? q.Pause(by) : q.Resume(by);
  if (!changed.ok()) return req.QueueError(action + ": ", changed.status());
  return req.Reply(200,
                   json{{"queue", queue}, {"paused", pause}, {"changed", *changed}, {"by", by}});
}

}  // namespace scenefarm::exporter
