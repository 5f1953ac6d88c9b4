// Child processes for tests: real servers (redis-server, prometheus, the ComfyUI test server)
// started on loopback and stopped by PID.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace scenefarm::testing {

// A temporary directory removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

class Process {
 public:
  // Starts argv[0] (a path) with stdout and stderr appended to log_file.
  Process(std::vector<std::string> argv, std::filesystem::path log_file);
  ~Process();  // Stop()
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  // SIGTERM, then SIGKILL after grace; returns the exit status as from waitpid, or -1.
  int Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));
  void Kill();  // SIGKILL, reaped
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  std::filesystem::path log_file_;
};

// Polls `pred` every 10 ms until it holds or `timeout` passes; returns its last value.
template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

// Reads a whole file ("" when absent).
std::string ReadFile(const std::filesystem::path& p);

// A command's exit code and output.
struct CliRun {
  int code = -1;
  std::string out, err;
};
// Runs `binary args...` to its end with `stdin_text` as its input; its stdin, stdout and stderr
// go through files in `dir`.
CliRun RunCommand(const std::string& binary, const std::vector<std::string>& args,
                  const std::filesystem::path& dir, const std::string& stdin_text = "");

}  // namespace scenefarm::testing

#include <thread>

namespace scenefarm::testing {
template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}
}  // namespace scenefarm::testing
