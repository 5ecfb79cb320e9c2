// See work_pool.h.
#include "gateway/work_pool.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

namespace rma::gateway {

WorkPool::WorkPool(size_t threads) : threads_(threads == 0 ? 1 : threads) {}

WorkPool::~WorkPool() { Stop(); }

void WorkPool::Start() {
  {
    MutexLock lock(&mu_);
    if (running_) return;
    running_ = true;
    stopping_ = false;
  }
  for (size_t i = 0; i < threads_; ++i) workers_.emplace_back([this] { Loop(); });
}

void WorkPool::Stop() {
  {
    MutexLock lock(&mu_);
    if (!running_) return;
    stopping_ = true;
  }
  cv_.SignalAll();
  for (std::thread& t : workers_) t.join();
  workers_.clear();
  MutexLock lock(&mu_);
  running_ = false;
}

void WorkPool::Post(std::function<void()> job) {
  {
    MutexLock lock(&mu_);
    if (running_ && !stopping_) {
      jobs_.push_back(std::move(job));
      cv_.Signal();
      return;
    }
  }
  job();
}

size_t WorkPool::queued() const {
  MutexLock lock(&mu_);
  return jobs_.size();
}

void WorkPool::Loop() {
  // Below the reactor threads: on a small machine a few large parses must not take the CPU from
  // the threads that answer everyone else (/health among them). Linux nice values are per thread.
  if (::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), kNice) != 0) {
    spdlog::debug("work pool: could not lower the thread's priority");
  }
  for (;;) {
    std::function<void()> job;
    {
      MutexLock lock(&mu_);
      while (jobs_.empty() && !stopping_) cv_.Wait(mu_);
      if (jobs_.empty()) return;  // stopping, and nothing left to run
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    try {
      job();
    } catch (const std::exception& e) {
      spdlog::error("work pool job threw: {}", e.what());
    }
  }
}

}  // namespace rma::gateway
