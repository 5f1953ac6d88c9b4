// The live workers as one scrape sees them: one walk of the workers' zset and hashes that the
// workers and worker_readings collectors share (issue #14 P8). Each collector used to walk the
// live workers with a script of its own: at 10,000 workers two ZRANGEBYSCOREs and 20,000 HGETs
// a scrape, a third of Redis's time for it. Now the first of the two to ask in a scrape reads
// the busy marks and the readings documents in one HMGET a worker; the other waits for that read
// and takes the same answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "collector.h"

namespace scenefarm::exporter {

struct LiveWorkersSnapshot {
  int64_t now_ms = 0;  // Redis's clock when the walk ran
  int64_t live = 0;    // heartbeat within the live window
  int64_t busy = 0;    // live, and their hash's busy mark is "1"
  struct Worker {
    std::string id;
    double heartbeat_ms = 0;
    bool busy = false;
  };
  std::vector<Worker> per_worker;  // only when asked for (--worker-labels)
  // {worker id, readings document} of the live workers that published readings.
  std::vector<std::pair<std::string, std::string>> readings;
};

class LiveWorkers {
 public:
  // per_worker: each worker's id, heartbeat and mark (--worker-labels).
  LiveWorkers(std::shared_ptr<SharedRedis> redis, std::chrono::milliseconds window, bool per_worker)
      : redis_(std::move(redis)), window_(window), per_worker_(per_worker) {}

  // The snapshot of scrape `scrape` (CurrentScrape(), collector.h): read from Redis by the
  // first caller of that scrape, shared with the others until EndScrape. A caller outside a
  // CollectorSet (scrape 0), or one late for its scrape (it ended, or a later one began: a
  // collector that ran past the deadline), reads anew and keeps nothing.
  Result<std::shared_ptr<const LiveWorkersSnapshot>> Get(uint64_t scrape);
  // The scrape is over (CollectorSet::OnScrapeEnd): its snapshot is let go. With every
  // worker's readings it is megabytes, not to be held between scrapes.
  void EndScrape(uint64_t scrape);
  // Whether a snapshot is held now (tests).
  bool Holding() const;

 private:
  Result<std::shared_ptr<const LiveWorkersSnapshot>> Read() const;

  std::shared_ptr<SharedRedis> redis_;
  std::chrono::milliseconds window_;
  bool per_worker_;
  mutable std::mutex mu_;  // held through a read: the second collector of a scrape waits for it
  uint64_t scrape_ = 0;    // the scrape cached_ belongs to
  uint64_t ended_ = 0;     // the latest scrape EndScrape was told of
  std::shared_ptr<const LiveWorkersSnapshot> cached_;
  Status cached_error_ = Status::Ok();
};

}  // namespace scenefarm::exporter
