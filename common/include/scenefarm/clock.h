// Time, injected so that tests never sleep for a lease to expire.
#pragma once

#include <atomic>
#include <cstdint>

namespace scenefarm {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch, for local decisions and records.
  virtual int64_t NowMs() const = 0;
  // The time the queue scripts run at; 0 lets Redis use its own clock, so that workers on
  // hosts with skewed clocks still agree on lease deadlines.
  virtual int64_t QueueTimeMs() const { return 0; }
};

class SystemClock : public Clock {
 public:
  int64_t NowMs() const override;
};

// A clock that moves only when told; the queue scripts run at its time too.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms) {}
  int64_t NowMs() const override { return now_.load(); }
  int64_t QueueTimeMs() const override { return now_.load(); }
  void AdvanceMs(int64_t ms) { now_ += ms; }

 private:
  std::atomic<int64_t> now_;
};

}  // namespace scenefarm
