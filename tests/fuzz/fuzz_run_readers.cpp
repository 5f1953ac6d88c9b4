// The run validator's readers (`scenefarm validate`, and every run a worker assembles): a run
// directory's artifact-metadata.json and run-summary.txt, and its scenes' telemetry.json files,
// as AssembleRun, PolicyOfRun and ValidateRun read them. Files on disk are written by other
// processes and by hand: never throws, never crashes, never reads outside the run directory.
//
// Input: up to three parts separated by a line "----": artifact-metadata.json, run-summary.txt,
// and a telemetry.json written to the scene directories s1/ and s2/ of the run.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "scenefarm/run_assembly.h"
#include "scenefarm/telemetry.h"

namespace fs = std::filesystem;

namespace {

const fs::path& Root() {
  static const fs::path root = [] {
    // tmpfs where there is one: AssembleRun syncs what it writes, thousands of times a second.
    const fs::path parent =
        fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string tmpl = (parent / "scenefarm-fuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    return fs::path(tmpl);
  }();
  static const struct Cleanup {
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(root, ec);
    }
  } cleanup;
  return root;
}

void Write(const fs::path& p, std::string_view data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(data.data(), data.size());
}

std::vector<std::string_view> Parts(std::string_view text) {
  std::vector<std::string_view> parts;
  constexpr std::string_view kSep = "\n----\n";
  while (parts.size() < 2) {
    const size_t at = text.find(kSep);
    if (at == std::string_view::npos) break;
    parts.push_back(text.substr(0, at));
    text.remove_prefix(at + kSep.size());
  }
  parts.push_back(text);
  parts.resize(3);
  return parts;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace scenefarm;
  const auto parts = Parts(std::string_view(reinterpret_cast<const char*>(data), size));
  const fs::path run = Root() / "run";
  std::error_code ec;
  fs::remove_all(run, ec);
  Write(run / "artifact-metadata.json", parts[0]);
  Write(run / "run-summary.txt", parts[1]);
  Write(run / "s1" / "telemetry.json", parts[2]);
  Write(run / "s2" / "telemetry.json", parts[2]);
  (void)telemetry::ValidateRun(run);

  // The same telemetry assembled into a run (as a worker does), then validated.
  const fs::path assembled = Root() / "assembled";
  fs::remove_all(assembled, ec);
  Write(assembled / "s1" / "telemetry.json", parts[2]);
  const telemetry::Policy policy = telemetry::PolicyOfRun(assembled, telemetry::Policy{});
  if (telemetry::AssembleRun(assembled, policy).ok()) (void)telemetry::ValidateRun(assembled);
  return 0;
}
