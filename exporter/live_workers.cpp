#include "live_workers.h"

#include <algorithm>

#include "scenefarm/queue.h"
#include "scenefarm/readings.h"

namespace scenefarm::exporter {
namespace {

// ARGV: the workers zset, the worker hash prefix, the oldest live heartbeat (ms), "1" for the
// per-worker triples, the readings field. Returns {live, busy, {id, heartbeat ms, busy mark,
// ...}, {id, readings document, ...}}; the documents of the live workers that have one (an
// older worker publishes none).
// The heartbeats (the zset's scores) are read only for the per-worker triples: WITHSCORES makes
// Redis print every score as a decimal string, which at 10,000 workers cost more of its time
// than the busy marks (issue #14 P8). One HMGET a worker reads its mark and its readings.
constexpr redis::Script kLiveWorkers = {"live_workers", R"lua(
local per_worker = ARGV[4] == '1'
local ids
if per_worker then
  ids = redis.call('ZRANGEBYSCORE', ARGV[1], ARGV[3], '+inf', 'WITHSCORES')
else
  ids = redis.call('ZRANGEBYSCORE', ARGV[1], ARGV[3], '+inf')
end
local step = per_worker and 2 or 1
local busy, per, docs = 0, {}, {}
for i = 1, #ids, step do
  local h = redis.call('HMGET', ARGV[2] .. ids[i], 'busy', ARGV[5])
  if h[1] == '1' then busy = busy + 1 end
  if per_worker then
    per[#per + 1] = ids[i]
    per[#per + 1] = ids[i + 1]
    per[#per + 1] = h[1] or '0'
  end
  if h[2] then
    docs[#docs + 1] = ids[i]
    docs[#docs + 1] = h[2]
  end
end
return {#ids / step, busy, per, docs}
)lua"};

}  // namespace

Result<std::shared_ptr<const LiveWorkersSnapshot>> LiveWorkers::Get(uint64_t scrape) {
  std::lock_guard<std::mutex> lock(mu_);
  if (scrape == 0 || scrape <= ended_ || scrape < scrape_) return Read();
  if (scrape != scrape_) {
    auto r = Read();
    scrape_ = scrape;
    cached_ = r.ok() ? *r : nullptr;
    cached_error_ = r.ok() ? Status::Ok() : r.status();
    return r;
  }
  if (!cached_) return cached_error_;
  return cached_;
}

void LiveWorkers::EndScrape(uint64_t scrape) {
  std::lock_guard<std::mutex> lock(mu_);
  ended_ = std::max(ended_, scrape);
  if (scrape_ <= ended_) {
    cached_.reset();
    cached_error_ = Status::Ok();
  }
}

bool LiveWorkers::Holding() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cached_ != nullptr;
}

Result<std::shared_ptr<const LiveWorkersSnapshot>> LiveWorkers::Read() const {
  std::lock_guard<std::mutex> lock(redis_->mu);
  auto& c = redis_->client;
  auto t = c.Command({"TIME"});
  if (!t.ok()) return t.status();
  if (t->elements.size() != 2) return Status::Internal("TIME: unexpected reply");
  auto snap = std::make_shared<LiveWorkersSnapshot>();
  snap->now_ms = t->elements[0].AsInt() * 1000 + t->elements[1].AsInt() / 1000;
  auto r = c.Eval(kLiveWorkers, {queue::kWorkersKey, queue::WorkerKey(""),
                                 std::to_string(snap->now_ms - window_.count()),
                                 per_worker_ ? "1" : "0", readings::kField});
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Internal("live_workers.lua: " + r->str);
  if (r->elements.size() != 4) return Status::Internal("live_workers.lua: unexpected reply");
  snap->live = r->elements[0].AsInt();
  snap->busy = r->elements[1].AsInt();
  auto& per = r->elements[2].elements;
  snap->per_worker.reserve(per.size() / 3);
  for (size_t i = 0; i + 3 <= per.size(); i += 3) {
    snap->per_worker.push_back(
        {std::move(per[i].str), std::stod(per[i + 1].AsString()), per[i + 2].AsString() == "1"});
  }
  auto& docs = r->elements[3].elements;
  snap->readings.reserve(docs.size() / 2);
  for (size_t i = 0; i + 2 <= docs.size(); i += 2)
    snap->readings.emplace_back(std::move(docs[i].str), std::move(docs[i + 1].str));
  return std::shared_ptr<const LiveWorkersSnapshot>(std::move(snap));
}

}  // namespace scenefarm::exporter
