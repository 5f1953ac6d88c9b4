// A real redis-server, a client, a fake clock and a Queue on it.
#pragma once

#include <gtest/gtest.h>

#include "scenefarm/queue.h"
#include "support/redis_server.h"

namespace scenefarm::testing {

inline Scene MakeScene(const std::string& id, int priority = 0, std::optional<int> budget = {}) {
  Scene s;
  s.id = id;
  s.run = "run1";
  s.workflow = {{"1", {{"class_type", "EmptyImage"}, {"inputs", nlohmann::json::object()}}}};
  s.priority = priority;
  s.retry_budget = budget;
  return s;
}

class QueueTest : public ::testing::Test {
 protected:
  QueueTest() : client_(redis_.options()), queue_(client_, queue::QueueOptions{}, clock_) {}

  // Leases and expects a scene.
  queue::LeasedScene MustLease(const std::string& worker,
                               std::chrono::milliseconds lease = std::chrono::seconds(30)) {
    auto r = queue_.Lease(worker, lease);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r.ok() && r->has_value()) << "nothing to lease";
    return r.ok() && r->has_value() ? **r : queue::LeasedScene{};
  }
  bool NothingToLease(const std::string& worker) {
    auto r = queue_.Lease(worker, std::chrono::seconds(30));
    return r.ok() && !r->has_value();
  }
  // Events of the queue's stream for one scene, oldest first.
  std::vector<std::string> Events(const std::string& id) {
    auto info = queue_.Show(id);
    std::vector<std::string> out;
    if (!info.ok()) return out;
    for (const auto& e : info->history)
      out.push_back(e["event"]);
    return out;
  }
  std::string Field(const std::string& id, const std::string& field) {
    return client_.Command({"HGET", "sf:{scenes}:scene:" + id, field})->AsString();
  }

  RedisServer redis_;
  FakeClock clock_;
  redis::Client client_;
  queue::Queue queue_;
};

}  // namespace scenefarm::testing
