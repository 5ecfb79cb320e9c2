// See executor.h.
#include "worker/executor.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>

namespace rma::worker {

namespace {
// Task errors are for people; the broker refuses strings past its limit (64 KiB by default).
constexpr size_t kMaxErrorBytes = 8 * 1024;
}  // namespace

Executor::Executor(size_t threads) : wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  RMA_CHECK(wake_fd_ >= 0) << "eventfd failed";
  for (size_t i = 0; i < std::max<size_t>(threads, 1); ++i)
    threads_.emplace_back([this] { Work(); });
}

Executor::~Executor() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  for (std::thread& t : threads_) t.join();
  close(wake_fd_);
}

void Executor::Submit(Job job) {
  {
    MutexLock lock(&mu_);
    jobs_.push_back(std::move(job));
  }
  cv_.Signal();
}

std::vector<proto::TaskResult> Executor::TakeFinished() {
  uint64_t drained = 0;
  (void)!read(wake_fd_, &drained, sizeof drained);
  MutexLock lock(&mu_);
  return std::exchange(finished_, {});
}

proto::TaskResult Executor::RunOne(Job& job) {
  proto::TaskResult r;
  r.task_id = job.task.task_id;
  r.attempt = job.task.attempt;
  auto start = std::chrono::steady_clock::now();
  Result<HandlerOutput> out = Status::Internal("handler did not run");
  // Cancelled while queued (a drain ran out of time, the broker gave up): do not start it.
  if (!job.cancel->cancelled()) {
    try {
      out = job.handler->Run(job.task, *job.cancel);
    } catch (const std::exception& e) {
      out = Status::Internal(std::string("handler threw: ") + e.what());
    }
  }
  r.run_ms = static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                       std::chrono::steady_clock::now() - start)
                                       .count());
  if (job.cancel->cancelled()) {
    r.outcome = proto::Outcome::kCancelled;
    r.error = "cancelled: " + job.cancel->reason();
  } else if (out.ok()) {
    r.outcome = proto::Outcome::kOk;
    r.result = std::move(out->body);
    r.content_type = std::move(out->content_type);
    r.http_status = out->http_status;
  } else {
    r.outcome = proto::Outcome::kError;
    r.error = PrintableTail(std::string_view(out.status().message()).substr(0, kMaxErrorBytes),
                            kMaxErrorBytes);
    // Bad input or too much output will fail again however often it is retried.
    r.retryable = IsRetryable(out.status().code());
  }
  return r;
}

void Executor::Work() {
  for (;;) {
    Job job;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && jobs_.empty()) cv_.Wait(mu_);
      if (jobs_.empty()) return;  // stopping and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    proto::TaskResult r = RunOne(job);
    {
      MutexLock lock(&mu_);
      finished_.push_back(std::move(r));
    }
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
}

}  // namespace rma::worker
