// Handlers: how a worker runs a task of one service. A handler is called on an executor thread with
// the task and a CancelToken; it returns the result or an error and must return promptly once the
// token is cancelled. Handlers are shared by all executor threads, so Run() must be thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "common/clock.h"
#include "common/status.h"
#include "schemas/messages.h"

namespace rma::worker {

// Cancellation of one running attempt, settable from the control thread, observable from the
// executor.
class CancelToken {
 public:
  void Cancel(std::string reason);
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  std::string reason() const;
  // Waits up to `d`; returns true if cancelled meanwhile (a cancellable sleep).
  bool WaitFor(Duration d) const;

 private:
  std::atomic<bool> cancelled_{false};
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string reason_;
};

struct HandlerOutput {
  std::string body;
  std::string content_type;
  uint32_t http_status = 0;
};

// The outcome of one attempt: a body, or an error (retryable unless said otherwise).
struct HandlerError {
  std::string message;
  bool retryable = true;
};

class Handler {
 public:
  virtual ~Handler() = default;
  // "builtin", "http" or "exec": advertised in the manifest.
  virtual std::string_view kind() const = 0;
  virtual Result<HandlerOutput> Run(const proto::TaskAssignment& task,
                                    const CancelToken& cancel) = 0;
  // Whether the backend behind the handler answers (http health probe); builtins are always
  // healthy.
  virtual bool Healthy() { return true; }
};

// Parses a handler spec: builtin:echo | builtin:sleep | builtin:fail |
// http://HOST:PORT[/health-path] | exec:COMMAND. InvalidArgument with a readable reason for
// anything else.
Result<std::shared_ptr<Handler>> MakeHandler(const std::string& spec);

}  // namespace rma::worker
