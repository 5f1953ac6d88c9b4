// scenefarm-worker's loop: resume -> reclaim -> lease (pipelined) -> render -> ack / retry /
// dead-letter, with a heartbeat thread renewing leases and a graceful drain on stop.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
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
  // Jobs the loop has waited for and finished (acknowledged, failed, or given up: lease lost).
  int64_t scenes_finished() const { return scenes_finished_; }

  // Runs until `stop` is set, then drains: no new leases, pipelined jobs withdrawn and
  // released, the job in hand finished within drain_seconds or released. Returns 0.
  int Run(const std::atomic<bool>& stop);
  // A pipe the process writes a byte to whenever it sets `stop` (worker_main.cpp's signal
  // handler): the heartbeat thread then sleeps in poll(2) on read_fd until a beat is due or a
  // byte comes, instead of looking at `stop` every 20 ms (~50 wake-ups a second, idle or not);
  // Run writes to write_fd itself when it ends. Both ends non-blocking; the caller owns them.
  // Without one (the tests' workers), the heartbeat thread polls `stop` as before.
  void SetStopPipe(int read_fd, int write_fd) {
    stop_read_fd_ = read_fd;
    stop_write_fd_ = write_fd;
  }

 private:
  void HeartbeatLoop(const std::atomic<bool>& done, const std::atomic<bool>& stop);
  // The heartbeat thread's sleep: up to d, ending early when until() holds (checked after each
  // byte on the stop pipe, or every 20 ms without one).
  void HeartbeatSleep(const std::function<bool()>& until, std::chrono::milliseconds d);
  void AbandonInHand();
  // Job::confirm_lease: renews the job's lease on this (the waiting) thread's connection.
  Status ConfirmLease(Job& job);
  // One beat (queues on the heartbeat thread's own connection); the first also writes the
  // worker's hash, readings included.
  void HeartbeatOnce(std::vector<queue::Queue>& queues, const std::string& readings);
  void ResumeOwnLeases();
  bool FillPipeline();
  std::shared_ptr<Job> LeaseOne();
  bool Admit(std::shared_ptr<Job> job);
  // *next (when given, and the worker may lease): the scene leased in the ack's round trip.
  void Finish(Job& job, const RenderOutcome& outcome, std::shared_ptr<Job>* next = nullptr);
  // Whether the loop may lease now (not stopping, renderer not known down).
  bool MayLease() const;
  std::vector<std::string> QueueNames() const;
  void NoteLeased(const queue::LeasedScene& lease);
  void Drain(const std::atomic<bool>& stop);
  void ReleaseJob(Job& job, const std::string& reason);
  // Idle: blocks on the queues' wake lists (and the worker's own, pushed on stop) until a
  // scene may be leasable, the next reclaim is due, or a delayed scene comes due.
  void WaitForWork(const std::atomic<bool>& stop);
  void NoteNextDue(int64_t due_ms);
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
  int stop_read_fd_ = -1;  // SetStopPipe
  int stop_write_fd_ = -1;
  // What the worker's hash says it renders ("" : idle); nullopt until first written. Written
  // only when it changes (ack_lease.lua writes it in the ack's round trip).
  std::optional<std::string> busy_mark_;
  // The earliest due delayed scene the last lease answers named (steady clock), if any.
  std::optional<std::chrono::steady_clock::time_point> next_due_;
  // The last ack's lease found every queue empty: the loop does not ask again at once.
  bool queues_empty_ = false;
  // The last idle wait ended at the reclaim's time without a token: reclaim, don't lease.
  bool idle_timed_out_ = false;
  // The queue whose wake token ended the last idle wait ("" : none).
  std::string woken_by_;
  // Queues whose last lease answer was "paused": logged once when each pauses and resumes, and
  // published in the worker's hash (field paused_queues, a JSON list).
  std::set<std::string> paused_queues_;
  std::atomic<int64_t> scenes_finished_{0};  // by the loop's Wait/Finish (stop log line, tests)
};

}  // namespace scenefarm::worker
