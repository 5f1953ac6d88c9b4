// The one place collectors are registered (see MakeCollectors) and the Collectable the HTTP
// server scrapes: it runs every collector, times it, and adds
// scenefarm_exporter_collector_success{collector} and _duration_seconds{collector}.
//
// Each collector runs on a thread of its own and is waited for until the deadline, all at once:
// one slow or hung source costs the scrape at most the deadline and its own success gauge (0),
// never the other collectors' figures. A collector still running from an earlier scrape is not
// started again (its source is not hammered); it reports success 0 until it returns.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "collector.h"
#include "options.h"

namespace scenefarm::exporter {

class CollectorSet : public prometheus::Collectable {
 public:
  explicit CollectorSet(std::chrono::milliseconds deadline = std::chrono::milliseconds(8000));
  // Stops the threads; waits for a collector in flight (bounded by its sources' timeouts).
  ~CollectorSet() override;
  CollectorSet(const CollectorSet&) = delete;
  CollectorSet& operator=(const CollectorSet&) = delete;

  // Starts the collector's thread. Not thread-safe: add every collector before the first scrape.
  void Add(std::unique_ptr<Collector> c);
  // Called with the scrape's number (CurrentScrape()) once a scrape has its families: what
  // collectors shared within it (LiveWorkers) is let go. Not thread-safe, as Add.
  void OnScrapeEnd(std::function<void(uint64_t)> f) { on_end_.push_back(std::move(f)); }
  Families Collect() const override;
  size_t size() const { return slots_.size(); }
  // Collectors that have been running for longer than `limit`, with their running time (s):
  // a source stuck beyond every timeout. /healthz reports them.
  std::vector<std::pair<std::string, double>> RunningLongerThan(
      std::chrono::milliseconds limit) const;
  std::chrono::milliseconds deadline() const { return deadline_; }

 private:
  struct Slot;
  static void Loop(Slot& slot);

  const std::chrono::milliseconds deadline_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<std::function<void(uint64_t)>> on_end_;
  mutable std::mutex mu_;         // one scrape at a time: the sources are not ours to hammer
  mutable uint64_t scrapes_ = 0;  // guarded by mu_: numbers the scrapes for CurrentScrape()
};

// Every collector the options ask for, sharing `redis`.
std::shared_ptr<CollectorSet> MakeCollectors(const ExporterOptions& o,
                                             std::shared_ptr<SharedRedis> redis);

}  // namespace scenefarm::exporter
