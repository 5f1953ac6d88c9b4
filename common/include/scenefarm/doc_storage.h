// Where enqueue writes a new scene's document (the global key sf:doc_storage, keys.h): in its
// own key (the default) or in its hash's `doc` field, the format of versions before the doc key,
// while such a version may run (a rolling upgrade, a rollback). `scenefarm doc-storage`; the
// procedure: docs/queue-protocol.md, "Upgrading to the doc key".
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "scenefarm/redis.h"
#include "scenefarm/status.h"

namespace scenefarm::queue {

struct DocStorage {
  std::string mode = "key";  // "key" or "hash"
  bool is_default = true;    // sf:doc_storage is not set
};

// kFailedPrecondition when sf:doc_storage holds anything but "key" or "hash" (enqueue refuses
// to run then).
Result<DocStorage> GetDocStorage(redis::Client& redis);
// mode: "key" or "hash" (kInvalidArgument otherwise). Moves no document.
Status SetDocStorage(redis::Client& redis, const std::string& mode);

struct DocsMoved {
  int64_t moved = 0;    // documents moved from their doc key into their scene's hash
  int64_t orphans = 0;  // doc keys deleted because their scene's hash was gone
};
// Moves the document of every scene of `queue` that has a doc key into its hash's `doc` field
// (doc_to_hash.lua): SCAN for the queue's doc keys, `batch` ids per script call so that Redis
// answers heartbeats between calls. Set the mode to "hash" first: a scene enqueued meanwhile
// then has no doc key, and one enqueued before is found by the SCAN.
Result<DocsMoved> MoveDocsToHash(redis::Client& redis, const std::string& queue, size_t batch);

}  // namespace scenefarm::queue
