// See signals.h.
#include "common/signals.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rma {

Result<SignalWatcher> SignalWatcher::Create(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  if (pthread_sigmask(SIG_BLOCK, &set, nullptr) != 0) {
    return Status::Internal("pthread_sigmask failed");
  }
  int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd < 0) return Status::Internal(std::string("signalfd failed: ") + std::strerror(errno));
  return SignalWatcher(fd);
}

SignalWatcher::~SignalWatcher() {
  if (fd_ >= 0) close(fd_);
}

std::optional<int> SignalWatcher::Take() {
  signalfd_siginfo info{};
  ssize_t n = read(fd_, &info, sizeof info);
  if (n != static_cast<ssize_t>(sizeof info)) return std::nullopt;
  return static_cast<int>(info.ssi_signo);
}

std::optional<int> SignalWatcher::Wait(int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  int rc = poll(&p, 1, timeout_ms);
  if (rc <= 0) return std::nullopt;
  return Take();
}

}  // namespace rma
