// scenefarm doc-storage [key|hash]: where enqueue writes a new scene's document (sf:doc_storage).
// Without an argument prints the mode. `hash` sets it, then moves the document of every scene
// of every queue (sf:queues) that has a doc key back into its hash's `doc` field, where versions
// before the doc key read it: afterwards such a version can run (rolling upgrade, rollback).
// `key` sets the default back; documents already in hashes stay there and are still read.
// Procedure: docs/queue-protocol.md, "Upgrading to the doc key".
#include <iostream>

#include "commands.h"
#include "scenefarm/doc_storage.h"
#include "scenefarm/keys.h"

namespace scenefarm::cli {
namespace {

int Show(redis::Client& c, const Global& g) {
  auto d = queue::GetDocStorage(c);
  if (!d.ok()) return Fail("doc-storage: " + d.status().message());
  if (g.json) {
    std::cout << nlohmann::json{{"doc_storage", d->mode}, {"default", d->is_default}}.dump()
              << "\n";
  } else {
    std::cout << d->mode << (d->is_default ? " (the default: sf:doc_storage is not set)" : "")
              << "\n";
  }
  return kExitOk;
}

int SetKey(redis::Client& c, const Global& g) {
  if (Status s = queue::SetDocStorage(c, "key"); !s.ok())
    return Fail("doc-storage: " + s.message());
  if (g.json) {
    std::cout << nlohmann::json{{"doc_storage", "key"}}.dump() << "\n";
  } else {
    std::cout << "key: new scenes' documents go to their own keys; documents already in scene "
                 "hashes stay there and are still read\n";
  }
  return kExitOk;
}

// The mode first, then the walk: a scene enqueued after the SET has its document in its hash,
// one enqueued before has a doc key the SCAN finds.
int SetHash(redis::Client& c, const Global& g) {
  if (Status s = queue::SetDocStorage(c, "hash"); !s.ok())
    return Fail("doc-storage: " + s.message());
  auto queues = c.Command({"SMEMBERS", keys::kQueues});
  if (!queues.ok()) return Fail("doc-storage: " + queues.status().message());
  if (queues->is_error())
    return Fail("doc-storage: SMEMBERS " + std::string(keys::kQueues) + ": " + queues->str);
  const size_t batch = queue::QueueOptions().script_batch;
  queue::DocsMoved total;
  nlohmann::json per_queue = nlohmann::json::object();
  for (const auto& q : queues->elements) {
    const std::string name = q.AsString();
    auto moved = queue::MoveDocsToHash(c, name, batch);
    if (!moved.ok()) {
      return Fail("doc-storage: queue " + name + ": " + moved.status().message() +
                  " (sf:doc_storage is hash; run `scenefarm doc-storage hash` again)");
    }
    total.moved += moved->moved;
    total.orphans += moved->orphans;
    per_queue[name] = {{"moved", moved->moved}, {"orphans_deleted", moved->orphans}};
    if (!g.json) {
      std::cout << "queue " << name << ": " << moved->moved
                << " document(s) moved into their scene hashes, " << moved->orphans
                << " orphan doc key(s) deleted\n";
    }
  }
  if (g.json) {
    std::cout << nlohmann::json{{"doc_storage", "hash"},
                                {"moved", total.moved},
                                {"orphans_deleted", total.orphans},
                                {"queues", per_queue}}
                     .dump()
              << "\n";
  } else {
    std::cout << "hash: " << total.moved
              << " document(s) moved; new scenes' documents go to their hashes; versions "
                 "before the doc key can run now\n";
  }
  return kExitOk;
}

}  // namespace

void RegisterDocStorage(CLI::App& app, Global& g, int* exit_code) {
  auto* cmd = app.add_subcommand(
      "doc-storage",
      "where new scenes' documents are kept: key (own key, the default) or hash (the hash's doc "
      "field, readable by versions before the doc key; moves existing documents there)");
  auto mode = std::make_shared<std::string>();
  cmd->add_option("mode", *mode, "key or hash; none: print the current mode")
      ->check(CLI::IsMember({"key", "hash"}));
  cmd->add_flag("--json", g.json, "print JSON");
  cmd->callback([&g, mode, exit_code] {
    redis::Client c(RedisOptions(g));
    if (mode->empty()) {
      *exit_code = Show(c, g);
    } else if (*mode == "key") {
      *exit_code = SetKey(c, g);
    } else {
      *exit_code = SetHash(c, g);
    }
  });
}

}  // namespace scenefarm::cli
