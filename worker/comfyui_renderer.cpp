#include "comfyui_renderer.h"

#include <thread>

#include "scenefarm/log.h"

namespace scenefarm::worker {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

Status HttpStatusToStatus(const std::string& what, const http::Response& r) {
  if (r.status >= 500) return Status::Unavailable(what + ": HTTP " + std::to_string(r.status));
  return Status::Internal(what + ": HTTP " + std::to_string(r.status) + " " +
                          r.body.substr(0, 300));
}

}  // namespace

std::string PromptIdFor(const queue::LeasedScene& lease) {
  return lease.id + "-a" + std::to_string(lease.attempt);
}

std::string OutputPrefixFor(const queue::LeasedScene& lease) {
  return "scenefarm/" + lease.run + "/" + lease.id + "/a" + std::to_string(lease.attempt);
}

int RewriteOutputPrefixes(json& workflow, const std::string& prefix) {
  int n = 0;
  for (auto& [id, node] : workflow.items()) {
    if (node.contains("inputs") && node["inputs"].contains("filename_prefix") &&
        node["inputs"]["filename_prefix"].is_string()) {
      node["inputs"]["filename_prefix"] = prefix;
      ++n;
    }
  }
  return n;
}

ComfyUiRenderer::ComfyUiRenderer(const WorkerOptions& options)
    : options_(options), http_(options.comfyui_url, {2000ms, 30000ms}) {}

Status ComfyUiRenderer::Submit(Job& job) {
  json workflow = job.scene.workflow;
  RewriteOutputPrefixes(workflow, OutputPrefixFor(job.lease));
  const std::string prompt_id = PromptIdFor(job.lease);
  json req = {{"prompt", workflow}, {"prompt_id", prompt_id}, {"client_id", options_.worker_id}};
  auto r = http_.Post("/prompt", req.dump());
  if (!r.ok()) return r.status();
  if (r->status == 400) {
    // The workflow is wrong: retrying cannot help. The reason carries ComfyUI's own words.
    json body = json::parse(r->body, nullptr, false);
    return Status::InvalidArgument("ComfyUI refused the workflow (400): " +
                                   (body.is_discarded() ? r->body : body.dump()));
  }
  if (r->status != 200) return HttpStatusToStatus("POST /prompt", *r);
  log::Info("prompt_submitted", {{"scene_id", job.lease.id}, {"prompt_id", prompt_id}});
  return Status::Ok();
}

RenderOutcome ComfyUiRenderer::FromHistory(const json& entry, const std::string& prompt_id) {
  const json& status = entry["status"];
  if (status.value("status_str", "") == "success") {
    json files = json::array();
    for (const auto& [node, out] : entry["outputs"].items()) {
      for (const auto& img : out.value("images", json::array()))
        files.push_back(img);
    }
    return {Status::Ok(), {{"prompt_id", prompt_id}, {"outputs", files}}};
  }
  std::string why = "ComfyUI prompt " + prompt_id + " ended in error";
  for (const auto& m : status.value("messages", json::array())) {
    if (m.size() == 2 && m[0] == "execution_error") {
      why = m[1].value("exception_type", "") + ": " + m[1].value("exception_message", "");
      if (m[1].value("exception_type", "") == "torch.OutOfMemoryError") {
        (void)http_.Post("/free", json{{"unload_models", true}, {"free_memory", true}}.dump());
      }
    }
    if (m.size() == 2 && m[0] == "execution_interrupted") why = "interrupted in ComfyUI";
  }
  return {Status::Internal(why)};
}

RenderOutcome ComfyUiRenderer::Wait(Job& job) {
  const std::string prompt_id = PromptIdFor(job.lease);
  const auto start = std::chrono::steady_clock::now();
  const auto max_wait = WorkerOptions::Ms(options_.scene_max_wait_seconds);
  const auto interval = WorkerOptions::Ms(options_.scene_history_poll_interval_seconds);
  int attempts = 0;
  while (true) {
    if (job.abandon) return {Status::Aborted("render abandoned")};
    if (job.cancel_requested) {
      Withdraw(job);
      return {Status::Ok(), {}, /*cancelled=*/true};
    }
    auto r = http_.Get("/history/" + http::UrlEncode(prompt_id));
    ++attempts;
    if (r.ok() && r->status == 200) {
      json h = json::parse(r->body, nullptr, false);
      if (h.is_object() && h.contains(prompt_id)) return FromHistory(h[prompt_id], prompt_id);
    }
    const bool attempt_limit =
        options_.scene_history_max_attempts > 0 && attempts >= options_.scene_history_max_attempts;
    if (attempt_limit || std::chrono::steady_clock::now() - start >= max_wait) {
      Withdraw(job);  // maxWait interrupts the prompt before the scene is retried
      return {Status::DeadlineExceeded(attempt_limit ? "attemptLimit" : "maxWait")};
    }
    const auto until = std::chrono::steady_clock::now() + interval;
    while (std::chrono::steady_clock::now() < until && !job.abandon && !job.cancel_requested) {
      std::this_thread::sleep_for(20ms);
    }
  }
}

void ComfyUiRenderer::Withdraw(Job& job) {
  const std::string prompt_id = PromptIdFor(job.lease);
  (void)http_.Post("/queue", json{{"delete", {prompt_id}}}.dump());
  (void)http_.Post("/interrupt", json{{"prompt_id", prompt_id}}.dump());
}

}  // namespace scenefarm::worker
