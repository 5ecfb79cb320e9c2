// Mutex, MutexLock and CondVar: std::mutex and std::condition_variable wrapped so that clang's
// thread-safety analysis (-Wthread-safety, run by scripts/lint.sh --thread-safety in CI) checks the
// lock contract written in the declarations (RMA_GUARDED_BY, RMA_REQUIRES), as LevelDB's port
// layer does. Shared state in rma sits behind one of these; a plain std::mutex is not checked.
//
// Waiting takes the Mutex the caller holds; write the condition as a loop in the caller, where the
// analysis sees the lock (a predicate lambda would be analysed without it):
//   MutexLock lock(&mu_);
//   while (queue_.empty() && !stopping_) cv_.Wait(mu_);
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "common/clock.h"
#include "common/thread_annotations.h"

namespace rma {

class RMA_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;
  void Lock() RMA_ACQUIRE() { mu_.lock(); }
  void Unlock() RMA_RELEASE() { mu_.unlock(); }

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for its scope.
class RMA_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) RMA_ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RMA_RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* mu_;
};

class CondVar {
 public:
  // Releases `mu` while waiting and holds it again on return (spurious wake-ups happen: loop).
  void Wait(Mutex& mu) RMA_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // The same with a deadline; false once it has passed.
  bool WaitUntil(Mutex& mu, std::chrono::steady_clock::time_point deadline) RMA_REQUIRES(mu) {
    std::unique_lock<std::mutex> lock(mu.mu_, std::adopt_lock);
    bool in_time = cv_.wait_until(lock, deadline) == std::cv_status::no_timeout;
    lock.release();
    return in_time;
  }
  bool WaitFor(Mutex& mu, Duration d) RMA_REQUIRES(mu) {
    return WaitUntil(mu, std::chrono::steady_clock::now() + d);
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable cv_;
};

}  // namespace rma
