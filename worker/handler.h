// Handlers: how a worker runs a task of one service. A handler is called on an executor thread with
// the task and a CancelToken; it returns the result or an error and must return promptly once the
// token is cancelled. Handlers are shared by all executor threads and by the monitor thread (health
// probes), so Run() and CheckHealth() must be thread-safe; the handlers here keep no mutable state.
//
// Error codes say whether a retry can help: InvalidArgument and ResourceExhausted (bad payload,
// output over the limit) are reported as not retryable, everything else as retryable.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "protocol/messages.h"

namespace rma::worker {

// Cancellation of one running attempt: set from the control thread, observed on the executor.
// Blocking handlers subscribe a wake-up callback (curl_multi_wakeup, an eventfd write) so a cancel
// interrupts them at once instead of at their next poll.
class CancelToken {
 public:
  // Unsubscribes when destroyed; after that the callback is not running and never runs again.
  class Subscription {
   public:
    Subscription() = default;
    Subscription(Subscription&& other) noexcept
        : token_(std::exchange(other.token_, nullptr)), id_(other.id_) {}
    Subscription& operator=(Subscription&& other) noexcept;
    ~Subscription();

   private:
    friend class CancelToken;
    Subscription(const CancelToken* token, uint64_t id) : token_(token), id_(id) {}
    const CancelToken* token_ = nullptr;
    uint64_t id_ = 0;
  };

  void Cancel(std::string reason);
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  std::string reason() const;
  // Waits up to `d`; returns true if cancelled meanwhile (a cancellable sleep).
  bool WaitFor(Duration d) const;
  // Calls `wake` once when the token is cancelled (at once if it already is). The callback runs
  // with the token's lock held, on the cancelling thread: it must be short, must not block and
  // must not call back into this token.
  [[nodiscard]] Subscription OnCancel(std::function<void()> wake) const;

 private:
  void Unsubscribe(uint64_t id) const;

  std::atomic<bool> cancelled_{false};
  mutable Mutex mu_;
  mutable CondVar cv_;
  std::string reason_ RMA_GUARDED_BY(mu_);
  mutable uint64_t next_id_ RMA_GUARDED_BY(mu_) = 1;
  mutable std::map<uint64_t, std::function<void()>> wakers_ RMA_GUARDED_BY(mu_);
};

// Where a handler sends its output as the backend produces it (PARTIAL, docs/protocol.md §5.15),
// called on the executor thread. The first chunk carries the answer's status and content type.
// Best effort: chunks past the stream's memory bound are dropped (and so are the rest of that
// stream's), since the RESULT still carries the whole output.
class OutputStream {
 public:
  virtual ~OutputStream() = default;
  virtual void Chunk(std::string_view data, uint32_t http_status,
                     std::string_view content_type) = 0;
};

struct HandlerOutput {
  Bytes body;  // shared: an echo hands its payload back without copying it
  std::string content_type;
  uint32_t http_status = 0;
};

// Per-service settings of a handler (flags and the config file fill them; see
// docs/configuration.md). Not every field applies to every kind.
struct HandlerOptions {
  // http: path of the health endpoint on the backend; "" = the spec's "#/path", else "/health".
  std::string health_path;
  // http: connecting to the backend (and the whole health probe) may take this long.
  Duration connect_timeout = Seconds(2);
  Duration health_timeout = Seconds(2);
  // http, exec: used when a task carries no timeout of its own.
  Duration default_timeout = Seconds(300);
  // http, exec: the largest result (backend body, command stdout); more is a task error.
  size_t max_output_bytes = 16u << 20;
  // exec: content type reported for the command's stdout.
  std::string content_type = "application/octet-stream";
  // exec: after SIGTERM on cancel or timeout, the process group gets this long before SIGKILL.
  Duration kill_grace = Seconds(2);
  // exec: whether stdout streams to the caller as the command writes it (PARTIAL chunks); unset:
  // when content_type is text/event-stream.
  std::optional<bool> stream_output;
};

class Handler {
 public:
  virtual ~Handler() = default;
  // "builtin", "http" or "exec": advertised in the manifest.
  virtual std::string_view kind() const = 0;
  virtual Result<HandlerOutput> Run(const proto::TaskAssignment& task,
                                    const CancelToken& cancel) = 0;
  // Run, sending the output to `stream` as it comes when the backend streams it. Handlers that
  // cannot stream keep the default, which runs Run().
  virtual Result<HandlerOutput> RunStreaming(const proto::TaskAssignment& task,
                                             const CancelToken& cancel, OutputStream& stream) {
    (void)stream;
    return Run(task, cancel);
  }
  // Whether Run() returns within microseconds without blocking, I/O or waiting (builtin:echo,
  // builtin:fail): such a task runs on the control thread as its TASK is read, which saves two
  // thread hand-offs per task (payloads up to 64 KiB; larger ones, and anything else, run on the
  // executor).
  virtual bool runs_inline() const { return false; }
  // Whether the handler's backend should be probed before it is advertised (http only).
  virtual bool probed() const { return false; }
  // One health probe: Ok when the backend answers, else the reason. Called on the monitor thread.
  virtual Status CheckHealth() { return Status::Ok(); }
  // Whether the backend can say which models it serves (http: GET <base>/v1/models, OpenAI's list
  // format). Asked only for services configured without models.
  virtual bool lists_models() const { return false; }
  // The backend's model ids, sorted, without duplicates, at most proto::kMaxModelsPerService; ids
  // that are no model name (protocol/names.h) are left out. NotFound or InvalidArgument when the
  // backend has no model list (404, not the OpenAI format): it serves no named model; other errors
  // (unreachable, timeout) say nothing about its models. Called on the monitor thread.
  virtual Result<std::vector<std::string>> ListModels() { return std::vector<std::string>{}; }
  // Human description for logs ("http://127.0.0.1:8102 (health /health)").
  virtual std::string Describe() const = 0;
};

// Whether a failure with this code may succeed when run again.
bool IsRetryable(StatusCode code);

// `text` made safe for a log line or an error message: at most `max_bytes` from its end, invalid
// UTF-8 and control characters other than newline and tab replaced by '?', surrounding white space
// trimmed.
std::string PrintableTail(std::string_view text, size_t max_bytes);

// Parses a handler spec: builtin:echo | builtin:sleep | builtin:fail |
// http(s)://HOST:PORT[/BASE-PATH][#/HEALTH-PATH] | exec:COMMAND. InvalidArgument with a readable
// reason for anything else.
Result<std::shared_ptr<Handler>> MakeHandler(const std::string& spec,
                                             const HandlerOptions& options = {});

}  // namespace rma::worker
