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

}  // namespace scenefarm::cli
