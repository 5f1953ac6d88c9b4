// What the worker asks of a renderer. The worker owns the queue; the renderer owns ComfyUI.
//
// Status codes of Wait() pick the queue action (STYLE.md): OK acks; kInvalidArgument
// dead-letters at once (a workflow ComfyUI rejects, a scene that cannot render); kUnavailable,
// kDeadlineExceeded and kInternal retry within the budget, after backoff; kAborted means the
// worker gave the scene up (lease lost, shutdown) and the result is discarded.
#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include <nlohmann/json.hpp>

#include "scenefarm/queue.h"
#include "scenefarm/scene.h"
#include "scenefarm/status.h"

namespace scenefarm::worker {

struct Job {
  queue::LeasedScene lease;
  Scene scene;
  // Set by the heartbeat thread or the drain timer; the renderer polls them while it waits.
  std::atomic<bool> cancel_requested{false};  // `scenefarm cancel`: stop the render
  std::atomic<bool> abandon{false};           // lease lost or drain timed out: stop, no result
  std::atomic<bool> lease_lost{false};        // another worker owns the scene now
  // The worker's stop flag (SIGTERM): a job still waiting to be submitted gives up at once.
  const std::atomic<bool>* stopping = nullptr;
  // Set by the worker around Renderer::Wait (called on the thread that waits): renews this
  // job's lease now, one round trip, and says whether the scene is still this attempt's: OK;
  // kAborted when another worker owns it (lease_lost and abandon are set); kUnavailable when
  // Redis did not answer. The renderer asks right before it writes into the scene's directory,
  // so that a worker cut off from Redis while its lease was taken over never replaces the files
  // of the attempt that owns the scene now (issue #15 R7).
  std::function<Status()> confirm_lease;
  bool lease_confirmed = false;  // confirm_lease answered OK for this attempt
  bool submitted = false;
  std::shared_ptr<void> renderer_state;  // the renderer's own per-job data
};

struct RenderOutcome {
  RenderOutcome() = default;
  RenderOutcome(Status s, nlohmann::json r = nlohmann::json::object(), bool c = false)
      : status(std::move(s)), result(std::move(r)), cancelled(c) {}
  Status status;
  nlohmann::json result = nlohmann::json::object();  // stored with the ack
  bool cancelled = false;                            // stopped because cancel_requested
  nlohmann::json telemetry;  // seed 001's Telemetry object, when the renderer recorded one
};

class Renderer {
 public:
  virtual ~Renderer() = default;
  // Starts the job (POST /prompt). Called for pipelined jobs while another renders, so that
  // ComfyUI goes from one scene to the next without waiting on the queue.
  // kUnavailable: the backend stayed unreachable for the whole wait and nothing was submitted;
  // when Probe() fails too, the worker releases the scene (its budget kept) and leases nothing
  // more until Probe() is OK; when Probe() answers, the failure is the scene's (budget spent).
  // kAborted: the job's abandon, cancel_requested or stopping flag ended the wait.
  virtual Status Submit(Job& job) = 0;
  // Whether the backend answers now (one cheap request). Called with backoff while the worker
  // waits out an outage.
  virtual Status Probe() { return Status::Ok(); }
  // Blocks until the job finished, failed, or one of its flags was set.
  virtual RenderOutcome Wait(Job& job) = 0;
  // Withdraws a submitted job that will not be waited for (shutdown, lease lost): dequeues or
  // interrupts it in ComfyUI.
  virtual void Withdraw(Job& job) = 0;
};

}  // namespace scenefarm::worker
