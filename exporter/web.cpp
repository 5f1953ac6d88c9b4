#include "web.h"

#include <crypt.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>

namespace scenefarm::exporter {
namespace fs = std::filesystem;

Result<WebConfig> LoadWebConfig(const std::string& path) {
  WebConfig c;
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const std::exception& e) {
    return Status::InvalidArgument("web config " + path + ": " + e.what());
  }
  const fs::path base = fs::path(path).parent_path();
  auto resolve = [&](const std::string& p) {
    return p.empty() || fs::path(p).is_absolute() ? p : (base / p).string();
  };
  try {
    if (auto tls = root["tls_server_config"]; tls && tls.IsMap()) {
      c.cert_file = resolve(tls["cert_file"] ? tls["cert_file"].as<std::string>() : "");
      c.key_file = resolve(tls["key_file"] ? tls["key_file"].as<std::string>() : "");
      if (c.cert_file.empty() != c.key_file.empty())
        return Status::InvalidArgument("web config " + path +
                                       ": cert_file and key_file go together");
    }
    if (auto users = root["basic_auth_users"]; users && users.IsMap()) {
      for (const auto& kv : users) {
        const std::string hash = kv.second.as<std::string>();
        if (hash.rfind("$2", 0) != 0)
          return Status::InvalidArgument("web config " + path + ": user " +
                                         kv.first.as<std::string>() + " needs a bcrypt hash");
        c.users[kv.first.as<std::string>()] = hash;
      }
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument("web config " + path + ": " + e.what());
  }
  return c;
}

std::string Base64Decode(const std::string& in) {
  static const std::string chars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  int val = 0, bits = -8;
  for (unsigned char ch : in) {
    if (ch == '=') break;
    const auto pos = chars.find(static_cast<char>(ch));
    if (pos == std::string::npos) return "";
    val = ((val << 6) | static_cast<int>(pos)) & 0xFFFFFF;  // 24 bits hold every pending bit
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  return out;
}

bool BasicAuth::Check(const char* header) {
  if (users_.empty()) return true;
  if (header == nullptr) return false;
  const std::string h = header;
  if (h.rfind("Basic ", 0) != 0) return false;
  const std::string pair = Base64Decode(h.substr(6));
  const auto colon = pair.find(':');
  if (colon == std::string::npos) return false;
  const std::string user = pair.substr(0, colon), pass = pair.substr(colon + 1);
  auto it = users_.find(user);
  if (it == users_.end()) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (verified_.count(pair)) return true;
  }
  crypt_data data{};
  const char* out = crypt_r(pass.c_str(), it->second.c_str(), &data);
  const bool ok = out != nullptr && it->second == out;
  if (ok) {
    std::lock_guard<std::mutex> lock(mu_);
    if (verified_.size() < 1000) verified_.insert(pair);
  }
  return ok;
}

}  // namespace scenefarm::exporter
