// scenefarm-worker's loop: resume -> reclaim -> lease (pipelined) -> render -> ack / retry /
// dead-letter, with a heartbeat thread renewing leases and a graceful drain on stop.
#pragma once

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "renderer.h"
#include "scenefarm/clock.h"
#include "scenefarm/options.h"
#include "scenefarm/queue.h"
#include "scenefarm/redis.h"

namespace scenefarm::worker {

class Worker {
 public:
  Worker(WorkerOptions options, Renderer& renderer, const Clock& clock);
  ~Worker();

  // Runs until `stop` is set, then drains: no new leases, pipelined jobs withdrawn and
  // released, the job in hand finished within drain_seconds or released. Returns 0.
  int Run(const std::atomic<bool>& stop);

 private:
  void HeartbeatLoop(const std::atomic<bool>& done, const std::atomic<bool>& stop);
  void AbandonInHand();
  void HeartbeatOnce(redis::Client& client, std::vector<queue::Queue>& queues);
  void ResumeOwnLeases();
  bool FillPipeline();
  std::shared_ptr<Job> LeaseOne();
  bool Admit(std::shared_ptr<Job> job);
  void Finish(Job& job, const RenderOutcome& outcome);
  void Drain(const std::atomic<bool>& stop);
  void ReleaseJob(Job& job, const std::string& reason);
  void SleepIdle(const std::atomic<bool>& stop);
  bool RendererDown();
  void ReleaseInOutage(Job& job, const Status& why);
  // The queue the job was leased from; nullptr (logged) for a queue this worker does not serve.
  queue::Queue* QueueFor(const Job& job);
  void SetBusy(bool busy, const std::string& scene);
  void NotePaused(const std::string& queue, bool paused);
  void AssembleFinishedRuns(queue::Queue& q);

  const WorkerOptions options_;
  Renderer& renderer_;
  const Clock& clock_;
  redis::Client redis_;               // the loop's connection
  std::vector<queue::Queue> queues_;  // in priority order
  std::mt19937_64 rng_;

  const std::atomic<bool>* stop_ = nullptr;  // Run's flag, handed to each job

  std::mutex mu_;                          // guards jobs_ and admitting_ against the heartbeat
  std::deque<std::shared_ptr<Job>> jobs_;  // front: rendering; the rest: pipelined
  // Leased and being submitted (or finished after a failed submission): not in jobs_ yet, but
  // held, so the heartbeat renews their leases and delivers their cancels.
  std::vector<std::shared_ptr<Job>> admitting_;
  // Set when a submission found the renderer unreachable for the whole wait: nothing is leased
  // until Probe() answers, tried at next_probe_ with a backoff that doubles.
  bool renderer_down_ = false;
  std::chrono::steady_clock::time_point next_probe_{};
  std::chrono::milliseconds probe_backoff_{0};
  std::chrono::steady_clock::time_point last_reclaim_{};
  int idle_rounds_ = 0;
  // Queues whose last lease answer was "paused": logged once when each pauses and resumes, and
  // published in the worker's hash (field paused_queues, a JSON list).
  std::set<std::string> paused_queues_;
  int64_t scenes_finished_ = 0;  // by the loop's Wait/Finish, for the stop log line
};

}  // namespace scenefarm::worker
