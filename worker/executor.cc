// See executor.h.
#include "worker/executor.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <optional>

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

std::vector<proto::TaskResult> Executor::TakeFinished() { return TakeAll().finished; }

Executor::Taken Executor::TakeAll() {
  uint64_t drained = 0;
  (void)!read(wake_fd_, &drained, sizeof drained);
  MutexLock lock(&mu_);
  partial_bytes_ = 0;
  return Taken{std::exchange(partials_, {}), std::exchange(finished_, {})};
}

// One job's stream: numbers its chunks and queues them for the control thread.
class Executor::JobStream final : public OutputStream {
 public:
  JobStream(Executor& executor, const proto::TaskAssignment& task)
      : executor_(executor), task_id_(task.task_id), attempt_(task.attempt) {}

  void Chunk(std::string_view data, uint32_t http_status, std::string_view content_type) override {
    if (broken_ || data.empty()) return;
    proto::Partial p;
    p.task_id = task_id_;
    p.attempt = attempt_;
    p.seq = seq_;
    p.data = std::string(data);
    if (seq_ == 0) {
      p.http_status = http_status;
      p.content_type = std::string(content_type);
    }
    {
      MutexLock lock(&executor_.mu_);
      if (executor_.partial_bytes_ + data.size() > kMaxQueuedChunkBytes) {
        // A later chunk would leave a gap the broker refuses: this stream is over.
        broken_ = true;
        return;
      }
      executor_.partial_bytes_ += data.size();
      executor_.partials_.push_back(std::move(p));
    }
    ++seq_;
    uint64_t one = 1;
    (void)!write(executor_.wake_fd_, &one, sizeof one);
  }

 private:
  Executor& executor_;
  const TaskId task_id_;
  const uint32_t attempt_;
  uint32_t seq_ = 0;
  bool broken_ = false;
};

proto::TaskResult Executor::RunOne(Job& job, OutputStream* stream) {
  proto::TaskResult r;
  r.task_id = job.task.task_id;
  r.attempt = job.task.attempt;
  auto start = std::chrono::steady_clock::now();
  Result<HandlerOutput> out = Status::Internal("handler did not run");
  // Cancelled while queued (a drain ran out of time, the broker gave up): do not start it.
  if (!job.cancel->cancelled()) {
    try {
      out = stream != nullptr ? job.handler->RunStreaming(job.task, *job.cancel, *stream)
                              : job.handler->Run(job.task, *job.cancel);
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
    std::optional<JobStream> stream;
    if (job.stream) stream.emplace(*this, job.task);
    proto::TaskResult r = RunOne(job, stream ? &*stream : nullptr);
    {
      MutexLock lock(&mu_);
      finished_.push_back(std::move(r));
    }
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
}

}  // namespace rma::worker
