// Test support: real child processes (the rma binaries) with their output in a log file, and
// waiting with a deadline instead of sleeping. A Process kills its child (SIGKILL) when destroyed,
// so no test leaves one behind. Used from the test's main thread only.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace rma::testing {

// Under AddressSanitizer or ThreadSanitizer a process's memory (shadow, quarantine) and speed are
// not its own: tests of budgets still check every refusal, but print their memory and latency
// figures instead of asserting them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
// EXPECT_LT of a memory or latency figure: skipped under a sanitizer (a message may follow with
// <<).
#define EXPECT_FIGURE_LT(a, b)      \
  if (::rma::testing::kSanitized) { \
  } else                            \
    EXPECT_LT(a, b)

// Directory holding rma-broker, rma-worker, rma-gateway and rmactl (set by CMake).
std::string BinDir();
// A fresh temporary directory removed at process exit.
std::string TempDir(const std::string& prefix);
std::string ReadFile(const std::string& path);

class Process {
 public:
  // Starts `binary` (a name in BinDir() or a path) with args; stdout and stderr go to `log_path`.
  static Process Start(const std::string& binary, const std::vector<std::string>& args,
                       const std::string& log_path,
                       const std::map<std::string, std::string>& env = {});
  Process() = default;
  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();

  pid_t pid() const { return pid_; }
  bool running();
  void Signal(int sig);
  void Kill() { Signal(9); }
  // Waits up to `timeout` for the child to exit; returns its exit code (128+signal when killed) or
  // nullopt.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  const std::string& log_path() const { return log_path_; }
  std::string Log() const { return ReadFile(log_path_); }

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string log_path_;
};

// Polls `condition` every few milliseconds until it holds or `timeout` passes; returns whether it
// held.
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// Waits for a file to exist and be non-empty; returns its content or "" on timeout.
std::string WaitForFile(const std::string& path, std::chrono::milliseconds timeout);

}  // namespace rma::testing
