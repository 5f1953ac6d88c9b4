#include <iostream>

#include "commands.h"

namespace scenefarm::cli {

int Fail(const std::string& what) {
  std::cerr << "scenefarm: " << what << "\n";
  return kExitFailure;
}

redis::Options RedisOptions(const Global& g) {
  redis::Options o;
  o.url = g.redis_url;
  o.connect_timeout = std::chrono::milliseconds(2000);
  return o;
}

namespace {
queue::QueueOptions OptionsFor(const Global& g, int default_retry_budget) {
  queue::QueueOptions qo;
  qo.name = g.queue;
  qo.default_retry_budget = default_retry_budget;
  return qo;
}
}  // namespace

QueueHandle::QueueHandle(const Global& g, int default_retry_budget)
    : client(RedisOptions(g)), queue(client, OptionsFor(g, default_retry_budget), clock) {}

}  // namespace scenefarm::cli
