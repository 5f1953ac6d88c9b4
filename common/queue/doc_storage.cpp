#include "scenefarm/doc_storage.h"

#include <algorithm>
#include <vector>

#include "queue_scripts.h"
#include "scenefarm/keys.h"

namespace scenefarm::queue {
namespace {

const redis::Script kDocToHash{"doc_to_hash", scripts::k_doc_to_hash};

// A queue's name in a SCAN pattern matches itself only: glob characters escaped.
std::string GlobEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

Status MoveBatch(redis::Client& redis, const std::string& prefix, std::vector<std::string>* ids,
                 DocsMoved* total) {
  if (ids->empty()) return Status::Ok();
  std::vector<std::string> args = {prefix, "0"};
  args.insert(args.end(), ids->begin(), ids->end());
  ids->clear();
  auto r = redis.Eval(kDocToHash, args);
  if (!r.ok()) return r.status();
  if (r->is_error()) return Status::Internal("doc_to_hash: " + r->str);
  if (r->elements.size() != 2) return Status::Internal("doc_to_hash: unexpected reply");
  total->moved += r->elements[0].AsInt();
  total->orphans += r->elements[1].AsInt();
  return Status::Ok();
}

}  // namespace

Result<DocStorage> GetDocStorage(redis::Client& redis) {
  auto r = redis.Command({"GET", keys::kDocStorage});
  if (!r.ok()) return r.status();
  if (r->is_error())
    return Status::FailedPrecondition(std::string(keys::kDocStorage) + ": " + r->str);
  DocStorage d;
  if (r->is_nil()) return d;
  d.is_default = false;
  d.mode = r->AsString();
  if (d.mode != "key" && d.mode != "hash") {
    return Status::FailedPrecondition(std::string(keys::kDocStorage) + " holds \"" + d.mode +
                                      "\", not \"key\" or \"hash\": enqueue refuses to run");
  }
  return d;
}

Status SetDocStorage(redis::Client& redis, const std::string& mode) {
  if (mode != "key" && mode != "hash")
    return Status::InvalidArgument("doc storage must be \"key\" or \"hash\", got \"" + mode + "\"");
  auto r = redis.Command({"SET", keys::kDocStorage, mode});
  if (!r.ok()) return r.status();
  if (r->is_error())
    return Status::Internal("SET " + std::string(keys::kDocStorage) + ": " + r->str);
  return Status::Ok();
}

Result<DocsMoved> MoveDocsToHash(redis::Client& redis, const std::string& queue, size_t batch) {
  batch = std::max<size_t>(1, batch);
  const keys::QueueKeys k(queue);
  const std::string doc_prefix = k.Doc("");
  const std::string pattern = GlobEscape(doc_prefix) + "*";
  DocsMoved total;
  std::vector<std::string> ids;
  std::string cursor = "0";
  do {
    auto r = redis.Command({"SCAN", cursor, "MATCH", pattern, "COUNT", "1000"});
    if (!r.ok()) return r.status();
    if (r->is_error() || r->elements.size() != 2) return Status::Internal("SCAN: " + r->str);
    cursor = r->elements[0].AsString();
    for (const auto& key : r->elements[1].elements) {
      const std::string name = key.AsString();
      if (name.size() <= doc_prefix.size()) continue;  // "sf:{Q}:doc:" itself: no scene's
      ids.push_back(name.substr(doc_prefix.size()));
      if (ids.size() >= batch) {
        if (Status s = MoveBatch(redis, k.prefix(), &ids, &total); !s.ok()) return s;
      }
    }
  } while (cursor != "0");
  if (Status s = MoveBatch(redis, k.prefix(), &ids, &total); !s.ok()) return s;
  return total;
}

}  // namespace scenefarm::queue
