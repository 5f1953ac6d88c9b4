// Read-only views of a queue (status, one scene) for the CLI; the exporter reads the same keys.
#include "scenefarm/queue.h"

#include <set>

namespace scenefarm::queue {
namespace {

using json = nlohmann::json;

const char* const kOutcomes[] = {"succeeded", "failed", "retried", "dead_lettered", "cancelled"};

}  // namespace

json QueueStatus::ToJson() const {
  json outcomes_json = json::object();
  for (const char* o : kOutcomes) {
    const auto it = outcomes.find(o);
    outcomes_json[o] = it == outcomes.end() ? 0 : it->second;
  }
  json j = {{"queue", queue},
            {"depth",
             {{"pending", depth.pending},
              {"delayed", depth.delayed},
              {"leased", depth.leased},
              {"dead", depth.dead}}},
            {"outcomes", outcomes_json},
            {"workers", {{"live", workers_live}, {"busy", workers_busy}}},
            {"oldest_pending_age_seconds", oldest_pending_age_seconds},
            {"runs_in_progress", runs_in_progress},
            {"paused", paused}};
  if (paused) {
    j["paused_by"] = paused_by;
    j["paused_at_ms"] = paused_at_ms;
  }
  return j;
}

json SceneInfo::ToJson() const {
  json j = {
      {"id", id}, {"run", run}, {"state", state}, {"attempts", attempts}, {"failures", failures}};
  if (!reason.empty()) j["reason"] = reason;
  if (!worker.empty()) j["worker"] = worker;
  if (!result.is_null()) j["result"] = result;
  j["history"] = history;
  return j;
}

Result<QueueStatus> Queue::GetStatus(std::chrono::milliseconds live_window) {
  // The Redis server's time (the time scripts record), not this host's.
  auto now_ms = TimeMs();
  if (!now_ms.ok()) return now_ms.status();
  const int64_t now = *now_ms;
  auto replies = redis_.Pipeline({
      {"ZCARD", keys_.Pending()},
      {"ZCARD", keys_.Delayed()},
      {"ZCARD", keys_.Leased()},
      {"ZCARD", keys_.Dead()},
      {"HGETALL", keys_.Stats()},
      {"ZRANGEBYSCORE", keys::kWorkers, std::to_string(now - live_window.count()), "+inf"},
      {"SMEMBERS", keys_.Runs()},
      {"ZRANGE", keys_.PendingSince(), "0", "0", "WITHSCORES"},
      {"HMGET", keys_.Paused(), "by", "at"},
  });
  if (!replies.ok()) return replies.status();
  const auto& r = *replies;
  QueueStatus st;
  st.queue = options_.name;
  st.depth = {r[0].integer, r[1].integer, r[2].integer, r[3].integer};
  for (size_t i = 0; i + 1 < r[4].elements.size(); i += 2) {
    st.outcomes[r[4].elements[i].str] = r[4].elements[i + 1].AsInt();
  }
  st.workers_live = static_cast<int64_t>(r[5].elements.size());
  for (const auto& run : r[6].elements)
    st.runs_in_progress.push_back(run.str);
  std::sort(st.runs_in_progress.begin(), st.runs_in_progress.end());
  if (r[7].elements.size() == 2) {
    const double since = std::atof(r[7].elements[1].str.c_str());
    st.oldest_pending_age_seconds = std::max(0.0, (static_cast<double>(now) - since) / 1000.0);
  }
  if (r[8].elements.size() == 2 && !r[8].elements[1].is_nil()) {
    st.paused = true;
    st.paused_by = r[8].elements[0].AsString();
    st.paused_at_ms = r[8].elements[1].AsInt();
  }
  std::vector<std::vector<std::string>> busy;
  for (const auto& w : r[5].elements)
    busy.push_back({"HGET", keys::Worker(w.str), "busy"});
  auto details = redis_.Pipeline(busy);
  if (!details.ok()) return details.status();
  for (const auto& b : *details)
    st.workers_busy += b.AsString() == "1";
  return st;
}

Result<SceneInfo> Queue::Show(const std::string& id) {
  auto replies = redis_.Pipeline({{"HGETALL", keys_.Scene(id)},
                                  {"XREVRANGE", keys_.Events(), "+", "-", "COUNT", "2000"},
                                  {"GET", keys_.Doc(id)}});
  if (!replies.ok()) return replies.status();
  const auto& h = (*replies)[0].elements;
  if (h.empty()) return Status::NotFound("no scene '" + id + "' in queue " + name());
  std::map<std::string, std::string> f;
  for (size_t i = 0; i + 1 < h.size(); i += 2)
    f[h[i].str] = h[i + 1].str;
  SceneInfo info;
  info.id = id;
  info.run = f["run"];
  info.state = f["state"];
  info.reason = f["reason"];
  info.worker = f["worker"];
  info.attempts = std::atoll(f["attempts"].c_str());
  info.failures = std::atoll(f["failures"].c_str());
  // The doc key, or the hash's `doc` field of a scene enqueued before the doc key existed.
  const redis::Value& doc = (*replies)[2];
  info.doc = json::parse(doc.is_nil() ? f["doc"] : doc.AsString(), nullptr, false);
  if (!f["result"].empty()) info.result = json::parse(f["result"], nullptr, false);
  // The newest 2000 events of the queue; older history of a long-running queue is trimmed.
  for (const auto& entry : (*replies)[1].elements) {
    if (entry.elements.size() < 2) continue;
    json e = {{"event_id", entry.elements[0].str}};
    const auto& kv = entry.elements[1].elements;
    for (size_t i = 0; i + 1 < kv.size(); i += 2)
      e[kv[i].str] = kv[i + 1].str;
    if (e.value("scene", "") != id) continue;
    e.erase("scene");
    info.history.insert(info.history.begin(), e);
  }
  return info;
}

Result<std::vector<SceneInfo>> Queue::List(const std::string& state, const std::string& run,
                                           size_t limit) {
  static const std::set<std::string> kStates = {"pending", "delayed", "leased", "dead", "done"};
  if (!kStates.count(state)) {
    return Status::InvalidArgument("unknown state '" + state +
                                   "' (pending, delayed, leased, dead, done)");
  }
  // Read more than `limit` when filtering by run; bounded all the same.
  const size_t scan = run.empty() ? limit : std::max<size_t>(limit * 20, 10000);
  std::vector<std::string> ids;
  if (state == "done") {
    auto r = redis_.Command({"XREVRANGE", keys_.Events(), "+", "-", "COUNT",
                             std::to_string(std::max<size_t>(scan * 4, 2000))});
    if (!r.ok()) return r.status();
    std::set<std::string> seen;
    for (const auto& entry : r->elements) {
      if (entry.elements.size() < 2) continue;
      std::map<std::string, std::string> kv;
      const auto& f = entry.elements[1].elements;
      for (size_t i = 0; i + 1 < f.size(); i += 2)
        kv[f[i].str] = f[i + 1].str;
      if ((kv["event"] == "succeeded" || kv["event"] == "cancelled") &&
          seen.insert(kv["scene"]).second)
        ids.push_back(kv["scene"]);
      if (ids.size() >= scan) break;
    }
  } else {
    auto r = redis_.Command(
        {"ZRANGE", keys_.State(state), "0", std::to_string(static_cast<int64_t>(scan) - 1)});
    if (!r.ok()) return r.status();
    for (const auto& v : r->elements)
      ids.push_back(v.str);
  }
  std::vector<std::vector<std::string>> cmds;
  for (const auto& id : ids)
    cmds.push_back(
        {"HMGET", keys_.Scene(id), "run", "state", "attempts", "failures", "reason", "worker"});
  std::vector<SceneInfo> out;
  if (cmds.empty()) return out;
  auto r = redis_.Pipeline(cmds);
  if (!r.ok()) return r.status();
  for (size_t i = 0; i < ids.size() && out.size() < limit; ++i) {
    const auto& h = (*r)[i].elements;
    if (h.size() < 6 || h[1].is_nil()) continue;  // expired or purged meanwhile
    SceneInfo s;
    s.id = ids[i];
    s.run = h[0].AsString();
    s.state = h[1].AsString();
    s.attempts = h[2].AsInt();
    s.failures = h[3].AsInt();
    s.reason = h[4].AsString();
    s.worker = h[5].AsString();
    if (!run.empty() && s.run != run) continue;
    if (state != "done" && s.state != state) continue;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace scenefarm::queue
