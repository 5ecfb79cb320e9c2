// WorkPool: a few threads for the work a reactor thread must not do — parsing and encoding large
// request bodies (a 16 MiB submission takes tens of milliseconds to validate and encode; on a
// reactor thread that would stall every connection it serves, /health included). Jobs run in the
// order they were posted. The queue needs no bound of its own: only requests holding a BodyBudget
// lease are posted, so the budget bounds it in bytes and max_pending in count.
//
// Threads: Post() from any thread; jobs run on the pool's threads, at a lower priority than the
// rest of the process. Stop() runs what is still queued and joins the threads.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "common/mutex.h"

namespace rma::gateway {

class WorkPool {
 public:
  explicit WorkPool(size_t threads);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  void Start();
  // Runs every job still queued, then joins the threads. Post() after Stop() runs the job at once
  // on the caller's thread, so no job is ever dropped.
  void Stop();
  void Post(std::function<void()> job);
  size_t queued() const;

 private:
  void Loop();
  static constexpr int kNice = 10;  // the pool's threads run at this nice value (lower priority)
  const size_t threads_;
  std::vector<std::thread> workers_;
  mutable Mutex mu_;
  CondVar cv_;
  std::deque<std::function<void()>> jobs_ RMA_GUARDED_BY(mu_);
  bool running_ RMA_GUARDED_BY(mu_) = false;
  bool stopping_ RMA_GUARDED_BY(mu_) = false;
};

}  // namespace rma::gateway
