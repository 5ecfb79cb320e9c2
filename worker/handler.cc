// Handler factory, cancellation, and the built-in handlers (echo, sleep, fail) used by tests and
// demos.
#include "worker/handler.h"

#include <charconv>

#include "worker/exec_handler.h"
#include "worker/http_handler.h"

namespace rma::worker {

void CancelToken::Cancel(std::string reason) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelled_.load()) return;
    reason_ = std::move(reason);
    cancelled_.store(true, std::memory_order_release);
  }
  cv_.notify_all();
}

std::string CancelToken::reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reason_;
}

bool CancelToken::WaitFor(Duration d) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, d, [&] { return cancelled_.load(std::memory_order_acquire); });
}

namespace {

// Returns the payload unchanged: the pool's "hello world".
class EchoHandler final : public Handler {
 public:
  std::string_view kind() const override { return "builtin"; }
  Result<HandlerOutput> Run(const proto::TaskAssignment& task, const CancelToken&) override {
    return HandlerOutput{task.payload,
                         task.content_type.empty() ? "application/octet-stream" : task.content_type,
                         0};
  }
};

// Sleeps for the duration in the payload: a number of milliseconds, or a JSON object {"ms": N}.
// Cancellable.
class SleepHandler final : public Handler {
 public:
  std::string_view kind() const override { return "builtin"; }
  Result<HandlerOutput> Run(const proto::TaskAssignment& task, const CancelToken& cancel) override {
    std::string_view p = task.payload;
    size_t digits = p.find_first_of("0123456789");
    if (digits == std::string_view::npos) {
      return Status::InvalidArgument("sleep needs a duration in milliseconds in the payload");
    }
    int64_t ms = 0;
    auto [ptr, ec] = std::from_chars(p.data() + digits, p.data() + p.size(), ms);
    (void)ptr;
    if (ec != std::errc() || ms < 0 || ms > 24 * 3600 * 1000) {
      return Status::InvalidArgument("sleep duration out of range");
    }
    if (cancel.WaitFor(Ms(ms))) return Status::Cancelled(cancel.reason());
    return HandlerOutput{"{\"slept_ms\":" + std::to_string(ms) + "}", "application/json", 0};
  }
};

// Always fails (retryable): for testing retries and dead-lettering.
class FailHandler final : public Handler {
 public:
  std::string_view kind() const override { return "builtin"; }
  Result<HandlerOutput> Run(const proto::TaskAssignment& task, const CancelToken&) override {
    std::string why = task.payload.empty() ? "builtin:fail always fails"
                                           : "builtin:fail: " + task.payload.substr(0, 200);
    return Status::Internal(why);
  }
};

}  // namespace

Result<std::shared_ptr<Handler>> MakeHandler(const std::string& spec) {
  if (spec == "builtin:echo") return std::shared_ptr<Handler>(std::make_shared<EchoHandler>());
  if (spec == "builtin:sleep") return std::shared_ptr<Handler>(std::make_shared<SleepHandler>());
  if (spec == "builtin:fail") return std::shared_ptr<Handler>(std::make_shared<FailHandler>());
  if (spec.rfind("http://", 0) == 0 || spec.rfind("https://", 0) == 0) return MakeHttpHandler(spec);
  if (spec.rfind("exec:", 0) == 0) return MakeExecHandler(spec.substr(5));
  return Status::InvalidArgument(
      "unknown handler '" + spec +
      "' (use builtin:echo, builtin:sleep, builtin:fail, http://HOST:PORT or exec:COMMAND)");
}

}  // namespace rma::worker
