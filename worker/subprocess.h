// RunSubprocess: runs one command to completion from a multi-threaded process, with its input on
// stdin, its stdout collected (bounded) and the tail of its stderr kept for error messages.
//
// The child is started with posix_spawn (nothing but async-signal-safe work happens between fork
// and exec), in a process group of its own, with a clean signal mask and default dispositions, and
// with every descriptor above stderr closed, so it inherits none of the worker's sockets. On
// timeout, cancellation or too much output the whole group gets SIGTERM and, after a grace period,
// SIGKILL. When the command exits, anything it left running in its group is killed too. The child
// is always reaped before RunSubprocess returns: no zombies, no leaked descriptors.
//
// Runs on the calling thread (an executor or the monitor thread); it blocks until the command has
// ended, waking at once when `cancel` is cancelled.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "worker/handler.h"

namespace rma::worker {

struct SubprocessRequest {
  // argv[0] is the program: a path, or a name looked up in PATH.
  std::vector<std::string> argv;
  // NAME=VALUE entries added to (or replacing in) the worker's own environment.
  std::vector<std::string> env;
  // Written to the child's stdin, which is then closed.
  std::string input;
  // More stdout than this ends the command (kOutputTooLarge).
  size_t max_output_bytes = 16u << 20;
  // How much of the end of stderr is kept.
  size_t error_tail_bytes = 2048;
  Duration timeout = Seconds(300);
  // Between SIGTERM and SIGKILL when the command must be stopped.
  Duration kill_grace = Seconds(2);
  // When set, called on the calling thread with each piece of stdout as it is read (only what
  // fits under max_output_bytes), before it is appended to the result.
  std::function<void(std::string_view)> on_output;
};

enum class SubprocessEnd {
  kExited,          // exited on its own; see exit_code
  kSignalled,       // killed by a signal nobody here sent; see signal
  kTimedOut,        // ran past the timeout and was killed
  kCancelled,       // the CancelToken was cancelled and it was killed
  kOutputTooLarge,  // wrote more than max_output_bytes to stdout and was killed
};

struct SubprocessResult {
  SubprocessEnd end = SubprocessEnd::kExited;
  int exit_code = -1;
  int signal = 0;
  std::string output;      // stdout (cut at max_output_bytes)
  std::string error_tail;  // the last error_tail_bytes of stderr
  pid_t pid = -1;          // the (reaped) child, for logs and tests
};

// Unavailable when the command cannot be started (program missing, out of descriptors).
Result<SubprocessResult> RunSubprocess(const SubprocessRequest& request,
                                       const CancelToken* cancel = nullptr);

}  // namespace rma::worker
