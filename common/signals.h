// SignalWatcher: SIGINT/SIGTERM as a readable file descriptor (signalfd), so a ZeroMQ poll loop or
// a main thread can wait for them like any other event. Create it in main() before starting
// threads: it blocks the signals in the calling thread, and threads started afterwards inherit the
// mask, so only the descriptor sees them.
#pragma once

#include <initializer_list>
#include <optional>

#include "common/status.h"

namespace rma {

class SignalWatcher {
 public:
  static Result<SignalWatcher> Create(std::initializer_list<int> signals);
  SignalWatcher(SignalWatcher&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  SignalWatcher& operator=(SignalWatcher&&) = delete;
  SignalWatcher(const SignalWatcher&) = delete;
  ~SignalWatcher();

  int fd() const { return fd_; }
  // The next pending signal, or nullopt when none is pending. Never blocks.
  std::optional<int> Take();
  // Blocks up to timeout_ms (-1: forever) for a signal.
  std::optional<int> Wait(int timeout_ms);

 private:
  explicit SignalWatcher(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace rma
