// scenefarm enqueue [--run R] [--retry-budget N] [--max-scene-bytes N] FILE|-
// Reads a JSON object, a JSON array or JSON lines; validates every scene before sending any;
// enqueues in pipelined batches; prints one id per line (stdout) and a summary (stderr).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <thread>
#include <vector>

#include "commands.h"
#include "scenefarm/queue.h"

namespace scenefarm::cli {
namespace {

struct EnqueueArgs {
  std::string file;
  std::string run;
  int retry_budget = 1;
  size_t max_scene_bytes = kDefaultMaxSceneBytes;
};

Result<std::string> ReadInput(const std::string& file) {
  std::FILE* f = file == "-" ? stdin : std::fopen(file.c_str(), "rb");
  if (f == nullptr) return Status::NotFound("cannot read " + file);
  std::string text;
  std::vector<char> buf(1 << 20);
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0)
    text.append(buf.data(), n);
  const bool failed = std::ferror(f) != 0;
  if (f != stdin) std::fclose(f);
  if (failed) return Status::Internal("cannot read " + file);
  return text;
}

int RunEnqueue(const Global& g, const EnqueueArgs& a) {
  auto text = ReadInput(a.file);
  if (!text.ok()) return Fail(text.status().message());
  std::optional<std::string> run;
  if (!a.run.empty()) {
    if (!IsValidId(a.run)) return Fail("--run must match [A-Za-z0-9._-]{1,128}");
    run = a.run;
  }
  // Every scene is validated (and its document serialized) before any is sent; only the
  // serialized form is kept, not the parsed one.
  // JSON lines are parsed on every core (issue #14 P6: a million scenes took 4.5 s on one).
  const size_t parts = std::clamp<size_t>(std::thread::hardware_concurrency(), 1, 16);
  std::vector<std::vector<queue::EnqueueDoc>> part_docs(parts);
  Status parsed =
      ForEachSceneInParts(*text, run, a.max_scene_bytes, parts, [&](size_t part, Scene&& s) {
        part_docs[part].push_back(queue::ToEnqueueDoc(std::move(s)));
        return Status::Ok();
      });
  if (!parsed.ok()) return Fail(a.file + ": " + parsed.message() + " (nothing enqueued)");
  std::string().swap(*text);
  std::vector<queue::EnqueueDoc> docs = std::move(part_docs[0]);
  for (size_t k = 1; k < parts; ++k) {
    docs.insert(docs.end(), std::make_move_iterator(part_docs[k].begin()),
                std::make_move_iterator(part_docs[k].end()));
    std::vector<queue::EnqueueDoc>().swap(part_docs[k]);
  }
  QueueHandle h(g, a.retry_budget);
  const bool tty = isatty(STDERR_FILENO);
  const auto start = std::chrono::steady_clock::now();
  size_t created = 0, existing = 0;
  std::string out;
  constexpr size_t kChunk = 50000;  // scenes between progress lines
  for (size_t at = 0; at < docs.size(); at += kChunk) {
    const size_t end = std::min(docs.size(), at + kChunk);
    std::vector<queue::EnqueueDoc> chunk(std::make_move_iterator(docs.begin() + at),
                                         std::make_move_iterator(docs.begin() + end));
    auto r = h.queue.EnqueueDocs(chunk);
    if (!r.ok()) {
      return Fail("enqueue: " + r.status().message() + " (" + std::to_string(created) +
                  " scenes were enqueued before the error)");
    }
    out.clear();
    for (size_t i = 0; i < chunk.size(); ++i) {
      if ((*r)[i]) {
        ++created;
        out += chunk[i].id;
        out += '\n';
      } else {
        ++existing;
        std::cerr << "scenefarm: scene " << chunk[i].id << " already exists; not enqueued\n";
      }
    }
    std::cout << out;
    out.clear();
    if (tty) std::cerr << "\r  enqueued " << created + existing << "/" << docs.size() << std::flush;
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (tty) std::cerr << "\n";
  std::cerr << "enqueued " << created << " scenes to queue " << g.queue << " in " << secs << " s ("
            << static_cast<int64_t>(secs > 0 ? created / secs : 0) << " scenes/s)\n";
  return existing > 0 ? kExitFailure : kExitOk;
}

}  // namespace

void RegisterEnqueue(CLI::App& app, Global& g, int* exit_code) {
  auto args = std::make_shared<EnqueueArgs>();
  auto* cmd = app.add_subcommand("enqueue",
                                 "enqueue scenes from FILE (- for stdin): a JSON "
                                 "object, an array, or JSON lines; prints their ids");
  cmd->add_option("file", args->file, "scene file, or - for standard input")->required();
  cmd->add_option("--run", args->run, "run for scenes that name none");
  cmd->add_option("--retry-budget", args->retry_budget, "SceneRetryBudget for scenes that set none")
      ->envname("SCENEFARM_SCENE_RETRY_BUDGET")
      ->capture_default_str()
      ->check(CLI::Range(0, 100));
  cmd->add_option("--max-scene-bytes", args->max_scene_bytes,
                  "refuse a scene document (line, array element or object) over this many bytes")
      ->envname("SCENEFARM_MAX_SCENE_BYTES")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->callback([&g, args, exit_code] { *exit_code = RunEnqueue(g, *args); });
}

}  // namespace scenefarm::cli
