// A renderer for tests only: no ComfyUI. A scene's metadata.fake says what happens:
//   {"ms": 50}                          render time
//   {"fail": "retry", "fail_attempts": 1}  fail (retryable) while attempt <= fail_attempts
//   {"fail": "permanent"}               fail as a rejected workflow would
//   {"hold": true}                      render until FakeRenderer::ReleaseHeld() (process-wide),
//                                       so that a test waits for a condition, not for a time
#pragma once

#include <atomic>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "renderer.h"

namespace scenefarm::testing {

class FakeRenderer : public worker::Renderer {
 public:
  Status Submit(worker::Job& job) override {
    std::lock_guard<std::mutex> lock(mu_);
    submitted_.push_back(job.lease.id);
    in_flight_.insert(job.lease.id);
    max_in_flight_ = std::max(max_in_flight_, in_flight_.size());
    return Status::Ok();
  }

  worker::RenderOutcome Wait(worker::Job& job) override {
    nlohmann::json fake = job.scene.metadata.value("fake", nlohmann::json::object());
    if (!fake.is_object()) fake = nlohmann::json::object();
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(fake.value("ms", 0));
    while (std::chrono::steady_clock::now() < until ||
           (fake.value("hold", false) && !held_released_.load())) {
      if (job.abandon) return Done(job, {Status::Aborted("abandoned")});
      if (job.cancel_requested) return Done(job, {Status::Ok(), {}, true});
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const std::string fail = fake.value("fail", "");
    if (fail == "permanent") return Done(job, {Status::InvalidArgument("fake 400")});
    if (fail == "retry" && job.lease.attempt <= fake.value("fail_attempts", 1000)) {
      return Done(job, {Status::Internal("fake execution_error")});
    }
    return Done(job, {Status::Ok(), {{"rendered_by", "fake"}}});
  }

  void Withdraw(worker::Job& job) override {
    std::lock_guard<std::mutex> lock(mu_);
    withdrawn_.push_back(job.lease.id);
    in_flight_.erase(job.lease.id);
  }

  // Ends every {"hold": true} render, in every FakeRenderer of the process; HoldAgain() re-arms.
  static void ReleaseHeld() { held_released_ = true; }
  static void HoldAgain() { held_released_ = false; }

  size_t max_in_flight() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_in_flight_;
  }
  std::vector<std::string> withdrawn() {
    std::lock_guard<std::mutex> lock(mu_);
    return withdrawn_;
  }

 private:
  worker::RenderOutcome Done(worker::Job& job, worker::RenderOutcome o) {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.erase(job.lease.id);
    return o;
  }

  static inline std::atomic<bool> held_released_{false};
  std::mutex mu_;
  std::vector<std::string> submitted_, withdrawn_;
  std::multiset<std::string> in_flight_;
  size_t max_in_flight_ = 0;
};

}  // namespace scenefarm::testing
