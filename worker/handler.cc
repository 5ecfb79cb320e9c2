// Handler factory, cancellation, and the built-in handlers (echo, sleep, fail) used by tests and
// demos.
#include "worker/handler.h"

#include <charconv>

#include "worker/exec_handler.h"
#include "worker/http_handler.h"

namespace rma::worker {

CancelToken::Subscription::~Subscription() {
  if (token_ != nullptr) token_->Unsubscribe(id_);
}

CancelToken::Subscription& CancelToken::Subscription::operator=(Subscription&& other) noexcept {
  if (this != &other) {
    if (token_ != nullptr) token_->Unsubscribe(id_);
    token_ = std::exchange(other.token_, nullptr);
    id_ = other.id_;
  }
  return *this;
}

void CancelToken::Cancel(std::string reason) {
  {
    MutexLock lock(&mu_);
    if (cancelled_.load()) return;
    reason_ = std::move(reason);
    cancelled_.store(true, std::memory_order_release);
    // Under the lock: an unsubscribing handler must never see its callback run after it left.
    for (auto& [id, wake] : wakers_) wake();
  }
  cv_.SignalAll();
}

std::string CancelToken::reason() const {
  MutexLock lock(&mu_);
  return reason_;
}

bool CancelToken::WaitFor(Duration d) const {
  const auto deadline = std::chrono::steady_clock::now() + d;
  MutexLock lock(&mu_);
  while (!cancelled_.load(std::memory_order_acquire)) {
    if (!cv_.WaitUntil(mu_, deadline)) return cancelled_.load(std::memory_order_acquire);
  }
  return true;
}

CancelToken::Subscription CancelToken::OnCancel(std::function<void()> wake) const {
  MutexLock lock(&mu_);
  if (cancelled_.load()) wake();
  uint64_t id = next_id_++;
  wakers_.emplace(id, std::move(wake));
  return Subscription(this, id);
}

void CancelToken::Unsubscribe(uint64_t id) const {
  MutexLock lock(&mu_);
  wakers_.erase(id);
}

std::string PrintableTail(std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) text = text.substr(text.size() - max_bytes);
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  // A cut in the middle of a multi-byte character leaves continuation bytes first: skip them.
  while (i < text.size() && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) ++i;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80           ? 1
                 : (c >> 5) == 0x6  ? 2
                 : (c >> 4) == 0xE  ? 3
                 : (c >> 3) == 0x1E ? 4
                                    : 0;
    bool valid = len > 0 && i + len <= text.size();
    for (size_t k = 1; valid && k < len; ++k) {
      valid = (static_cast<unsigned char>(text[i + k]) & 0xC0) == 0x80;
    }
    if (!valid) {
      out += '?';
      ++i;
      continue;
    }
    if (len == 1 && c < 0x20 && c != '\n' && c != '\t') {
      out += '?';
    } else if (len == 1 && c == 0x7F) {
      out += '?';
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  size_t begin = out.find_first_not_of(" \t\n\r");
  if (begin == std::string::npos) return {};
  size_t end = out.find_last_not_of(" \t\n\r");
  return out.substr(begin, end - begin + 1);
}

bool IsRetryable(StatusCode code) {
  return code != StatusCode::kInvalidArgument && code != StatusCode::kResourceExhausted;
}

namespace {

// Returns the payload unchanged: the pool's "hello world".
class EchoHandler final : public Handler {
 public:
  std::string_view kind() const override { return "builtin"; }
  std::string Describe() const override { return "builtin:echo"; }
  bool runs_inline() const override { return true; }
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
  std::string Describe() const override { return "builtin:sleep"; }
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
  std::string Describe() const override { return "builtin:fail"; }
  bool runs_inline() const override { return true; }
  Result<HandlerOutput> Run(const proto::TaskAssignment& task, const CancelToken&) override {
    std::string why = task.payload.empty() ? "builtin:fail always fails"
                                           : "builtin:fail: " + task.payload.str().substr(0, 200);
    return Status::Internal(why);
  }
};

}  // namespace

Result<std::shared_ptr<Handler>> MakeHandler(const std::string& spec,
                                             const HandlerOptions& options) {
  if (spec == "builtin:echo") return std::shared_ptr<Handler>(std::make_shared<EchoHandler>());
  if (spec == "builtin:sleep") return std::shared_ptr<Handler>(std::make_shared<SleepHandler>());
  if (spec == "builtin:fail") return std::shared_ptr<Handler>(std::make_shared<FailHandler>());
  if (spec.rfind("http://", 0) == 0 || spec.rfind("https://", 0) == 0) {
    return MakeHttpHandler(spec, options);
  }
  if (spec.rfind("exec:", 0) == 0) return MakeExecHandler(spec.substr(5), options);
  return Status::InvalidArgument(
      "unknown handler '" + spec +
      "' (use builtin:echo, builtin:sleep, builtin:fail, http://HOST:PORT[/BASE][#/HEALTH] or "
      "exec:COMMAND)");
}

}  // namespace rma::worker
