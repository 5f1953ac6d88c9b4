// redis: reachability and the latency of one PING.
#include <chrono>

#include "collector.h"
#include "families.h"

namespace scenefarm::exporter {
namespace {

class RedisCollector : public Collector {
 public:
  explicit RedisCollector(std::shared_ptr<SharedRedis> redis)
      : Collector("redis"), redis_(std::move(redis)) {}

  Result<Families> Scrape() const override {
    std::lock_guard<std::mutex> lock(redis_->mu);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = redis_->client.Command({"PING"});
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const bool up = r.ok() && !r->is_error();
    Families out;
    out.push_back(Gauge(names::kRedisUp, "1 when Redis answered PING.").Add({}, up).Take());
    if (up) {
      out.push_back(Gauge(names::kRedisCommandDuration, "Round trip of one PING to Redis.")
                        .Add({}, secs)
                        .Take());
    }
    // redis_up 0 is itself the answer: the collector succeeded in finding Redis down; the
    // collectors that need Redis report their own failure.
    return out;
  }

 private:
  std::shared_ptr<SharedRedis> redis_;
};

}  // namespace

std::unique_ptr<Collector> MakeRedisCollector(std::shared_ptr<SharedRedis> redis) {
  return std::make_unique<RedisCollector>(std::move(redis));
}

}  // namespace scenefarm::exporter
