// The one place collectors are registered (see MakeCollectors) and the Collectable the HTTP
// server scrapes: it runs every collector, times it, and adds
// scenefarm_exporter_collector_success{collector} and _duration_seconds{collector}.
#pragma once

#include <memory>
#include <mutex>
#include <vector>

#include "collector.h"
#include "options.h"

namespace scenefarm::exporter {

class CollectorSet : public prometheus::Collectable {
 public:
  void Add(std::unique_ptr<Collector> c) { collectors_.push_back(std::move(c)); }
  Families Collect() const override;
  size_t size() const { return collectors_.size(); }

 private:
  std::vector<std::unique_ptr<Collector>> collectors_;
  mutable std::mutex mu_;  // one scrape at a time: the sources are not ours to hammer
  mutable std::vector<bool> last_ok_;
};

// Every collector the options ask for, sharing `redis`.
std::shared_ptr<CollectorSet> MakeCollectors(const ExporterOptions& o,
                                             std::shared_ptr<SharedRedis> redis);

}  // namespace scenefarm::exporter
