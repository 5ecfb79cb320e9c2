// Executor: a fixed pool of threads that run handler jobs, so the control thread never blocks on a
// task and keeps heartbeating while long tasks run. The control thread submits jobs and, when
// wake_fd() is readable, takes the finished results; executor threads never touch a socket.
// Thread-safe.
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
  };

  explicit Executor(size_t threads);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  void Submit(Job job);
  // Readable (eventfd) when finished results are waiting.
  int wake_fd() const { return wake_fd_; }
  std::vector<proto::TaskResult> TakeFinished();
  // Runs one job on the calling thread (what an executor thread does with it).
  static proto::TaskResult RunOne(Job& job);

 private:
  void Work();

  Mutex mu_;
  CondVar cv_;
  std::deque<Job> jobs_ RMA_GUARDED_BY(mu_);
  std::vector<proto::TaskResult> finished_ RMA_GUARDED_BY(mu_);
  bool stopping_ RMA_GUARDED_BY(mu_) = false;
  int wake_fd_;
  std::vector<std::thread> threads_;
};

}  // namespace rma::worker
