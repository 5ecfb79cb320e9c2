// Executor: a fixed pool of threads that run handler jobs, so the control thread never blocks on a
// task and keeps heartbeating while long tasks run. The control thread submits jobs and, when
// wake_fd() is readable, takes the finished results and the chunks of streaming jobs (PARTIAL);
// executor threads never touch a socket. Thread-safe.
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "worker/handler.h"

namespace rma::worker {

class Executor {
 public:
  struct Job {
    proto::TaskAssignment task;
    std::shared_ptr<Handler> handler;
    std::shared_ptr<CancelToken> cancel;
    bool stream = false;  // send the output as it comes (PARTIAL) when the handler streams it
  };
  // What the control thread takes: every chunk queued before a result is in the same take, so
  // sending the chunks first keeps each stream ahead of its RESULT.
  struct Taken {
    std::vector<proto::Partial> partials;
    std::vector<proto::TaskResult> finished;
  };
  // Chunks waiting for the control thread, all streams together, at most this many bytes; a chunk
  // past it is dropped, with the rest of its stream (the RESULT still has everything).
  static constexpr size_t kMaxQueuedChunkBytes = 8u << 20;

  explicit Executor(size_t threads);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Submit(Job job);
  // Readable (eventfd) when finished results are waiting.
  int wake_fd() const { return wake_fd_; }
  std::vector<proto::TaskResult> TakeFinished();
  Taken TakeAll();
  // Runs one job on the calling thread without streaming (what inline handlers need).
  static proto::TaskResult RunOne(Job& job) { return RunOne(job, nullptr); }

 private:
  class JobStream;
  static proto::TaskResult RunOne(Job& job, OutputStream* stream);
  void Work();

  Mutex mu_;
  CondVar cv_;
  std::deque<Job> jobs_ RMA_GUARDED_BY(mu_);
  std::vector<proto::TaskResult> finished_ RMA_GUARDED_BY(mu_);
  std::vector<proto::Partial> partials_ RMA_GUARDED_BY(mu_);
  size_t partial_bytes_ RMA_GUARDED_BY(mu_) = 0;
  bool stopping_ RMA_GUARDED_BY(mu_) = false;
  int wake_fd_;
  std::vector<std::thread> threads_;
};

}  // namespace rma::worker
