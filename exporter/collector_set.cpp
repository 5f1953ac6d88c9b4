#include "collector_set.h"

#include <condition_variable>
#include <thread>

#include "families.h"
#include "live_workers.h"
#include "scenefarm/log.h"

namespace scenefarm::exporter {
namespace {

using SteadyClock = std::chrono::steady_clock;

thread_local uint64_t t_scrape = 0;  // CurrentScrape() of the collector this thread runs

double SecondsSince(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace

uint64_t CurrentScrape() {
  return t_scrape;
}

// One collector and its thread. The scrape asks for run number `requested`; the thread runs
// the collector and publishes `result` as run `done`.
struct CollectorSet::Slot {
  explicit Slot(std::unique_ptr<Collector> c) : collector(std::move(c)) {}
  std::unique_ptr<Collector> collector;
  std::mutex mu;
  std::condition_variable cv;  // a new request, a finished run, or stopping
  uint64_t requested = 0, done = 0;
  uint64_t scrape = 0;  // the set's scrape number of run `requested`
  bool running = false, stopping = false;
  SteadyClock::time_point started{};
  Result<Families> result = Status::Internal("not run");
  double seconds = 0;
  bool last_ok = true;  // guarded by the set's mu_: transitions are logged, not every failure
  std::thread thread;
};

CollectorSet::CollectorSet(std::chrono::milliseconds deadline) : deadline_(deadline) {}

CollectorSet::~CollectorSet() {
  for (auto& s : slots_) {
    {
      std::lock_guard<std::mutex> lock(s->mu);
      s->stopping = true;
    }
    s->cv.notify_all();
  }
  for (auto& s : slots_)
    if (s->thread.joinable()) s->thread.join();
}

void CollectorSet::Add(std::unique_ptr<Collector> c) {
  slots_.push_back(std::make_unique<Slot>(std::move(c)));
  Slot& s = *slots_.back();
  s.thread = std::thread([&s] { Loop(s); });
}

void CollectorSet::Loop(Slot& s) {
  std::unique_lock<std::mutex> lock(s.mu);
  while (true) {
    s.cv.wait(lock, [&] { return s.stopping || s.requested > s.done; });
    if (s.stopping) return;
    const uint64_t run = s.requested;
    t_scrape = s.scrape;
    s.running = true;
    s.started = SteadyClock::now();
    lock.unlock();
    Result<Families> r = Status::Internal("not run");
    try {
      r = s.collector->Scrape();
    } catch (const std::exception& e) {
      r = Status::Internal(std::string("collector threw: ") + e.what());
    }
    lock.lock();
    s.seconds = SecondsSince(s.started);
    s.result = std::move(r);
    s.running = false;
    s.done = run;
    s.cv.notify_all();
  }
}

Families CollectorSet::Collect() const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto until = SteadyClock::now() + deadline_;
  // Start every idle collector at once; one still busy with an earlier scrape is left to it.
  std::vector<uint64_t> asked(slots_.size(), 0);
  const uint64_t scrape = ++scrapes_;
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = *slots_[i];
    std::lock_guard<std::mutex> slot_lock(s.mu);
    if (!s.running && s.requested == s.done) {
      asked[i] = ++s.requested;
      s.scrape = scrape;
    }
    s.cv.notify_all();
  }
  Families out;
  Family success =
      Gauge(names::kCollectorSuccess, "1 when the collector's source answered during this scrape.");
  Family duration = Gauge(names::kCollectorDuration, "Time the collector took during this scrape.");
  for (size_t i = 0; i < slots_.size(); ++i) {
    Slot& s = *slots_[i];
    std::unique_lock<std::mutex> slot_lock(s.mu);
    const bool finished =
        asked[i] != 0 && s.cv.wait_until(slot_lock, until, [&] { return s.done >= asked[i]; });
    Result<Families> r = Status::Internal("not run");
    double secs = 0;
    if (finished) {
      r = std::move(s.result);
      secs = s.seconds;
    } else {
      secs = s.running ? SecondsSince(s.started) : 0;
      r = Status::DeadlineExceeded(
          std::string(asked[i] != 0
                          ? "no answer within the deadline of "
                          : "still running from an earlier scrape past the deadline of ") +
          std::to_string(deadline_.count()) + " ms");
    }
    slot_lock.unlock();
    const std::string& name = s.collector->name();
    if (r.ok()) {
      for (auto& f : *r)
        out.push_back(std::move(f));
    }
    if (r.ok() != s.last_ok) {
      if (r.ok()) {
        log::Info("collector_recovered", {{"collector", name}});
      } else {
        log::Warn("collector_failed", {{"collector", name}, {"error", r.status().ToString()}});
      }
      s.last_ok = r.ok();
    }
    success.Add({{"collector", name}}, r.ok() ? 1 : 0);
    duration.Add({{"collector", name}}, secs);
  }
  for (const auto& f : on_end_)
    f(scrape);
  MergeSameName(&out);  // gpu and worker_readings serve the same GPU families
  out.push_back(success.Take());
  out.push_back(duration.Take());
  return out;
}

std::vector<std::pair<std::string, double>> CollectorSet::RunningLongerThan(
    std::chrono::milliseconds limit) const {
  std::vector<std::pair<std::string, double>> out;
  const double limit_s = std::chrono::duration<double>(limit).count();
  for (const auto& s : slots_) {
    std::lock_guard<std::mutex> lock(s->mu);
    if (s->running && SecondsSince(s->started) > limit_s)
      out.emplace_back(s->collector->name(), SecondsSince(s->started));
  }
  return out;
}

std::shared_ptr<CollectorSet> MakeCollectors(const ExporterOptions& o,
                                             std::shared_ptr<SharedRedis> redis) {
  auto set = std::make_shared<CollectorSet>(o.collector_deadline());
  set->Add(MakeRedisCollector(redis));
  set->Add(MakeQueueCollector(redis, o.queues));
  // workers and worker_readings read one walk of the live workers a scrape.
  auto live = std::make_shared<LiveWorkers>(redis, o.live_window(), o.worker_labels);
  set->OnScrapeEnd([live](uint64_t scrape) { live->EndScrape(scrape); });
  set->Add(MakeWorkersCollector(live, o.worker_labels));
  set->Add(MakeScenesCollector(redis, o.queues));
  set->Add(MakeWorkerReadingsCollector(live));
  if (o.gpu_source != "none")
    set->Add(MakeGpuCollector(o.gpu_source, o.comfyui_urls.empty() ? "" : o.comfyui_urls.front(),
                              o.timeout()));
  if (!o.comfyui_urls.empty()) set->Add(MakeComfyUiCollector(o.comfyui_urls, o.timeout()));
  if (!o.llm_url.empty() && !o.llm_skip)
    set->Add(
        MakeLlmCollector(o.llm_url, o.timeout(),
                         {o.llm_model, o.llm_generation_interval(), o.llm_generation_timeout()}));
  return set;
}

}  // namespace scenefarm::exporter
