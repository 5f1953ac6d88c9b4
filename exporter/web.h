// The web config file of Prometheus' exporter-toolkit, the part scenefarm-exporter serves:
//   tls_server_config: {cert_file: PATH, key_file: PATH}
//   basic_auth_users: {USER: BCRYPT_HASH, ...}
// Relative paths are relative to the file. Absent = plain HTTP, no authentication.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "scenefarm/status.h"

namespace scenefarm::exporter {

struct WebConfig {
  std::string cert_file, key_file;
  std::map<std::string, std::string> users;  // user -> bcrypt hash ($2a$, $2b$, $2y$)
  bool tls() const { return !cert_file.empty(); }
};

Result<WebConfig> LoadWebConfig(const std::string& path);

// Checks "Authorization: Basic ..." against the users. Successful pairs are remembered (a bcrypt
// check costs tens of milliseconds by design). Thread-safe.
class BasicAuth {
 public:
  explicit BasicAuth(std::map<std::string, std::string> users) : users_(std::move(users)) {}
  bool enabled() const { return !users_.empty(); }
  bool Check(const char* authorization_header);

 private:
  std::map<std::string, std::string> users_;
  std::mutex mu_;
  std::set<std::string> verified_;
};

std::string Base64Decode(const std::string& in);

}  // namespace scenefarm::exporter
