// Test support: clients submitting durable tasks through a gateway from their own threads, each one
// request at a time, remembering every task acknowledged with 202. A refusal (503: nothing was
// done) or an unknown outcome (504, no answer: the task may exist) is counted and retried after a
// short pause — load generation, not synchronisation. Used by the crash and high-availability
// end-to-end tests; the test's main thread reads the counts while the clients run.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace rma::testing {

class HttpLoad {
 public:
  // `url` is POST /api/tasks of a gateway; `key` an API key ("" for none); tasks of service echo.
  HttpLoad(std::string url, std::string key, int clients);
  ~HttpLoad();
  void Stop();

  size_t acked_count() const { return acked_count_; }
  size_t unavailable_count() const { return unavailable_; }  // 503
  size_t unknown_count() const { return unknown_; }          // anything else
  size_t refused_count() const { return unavailable_ + unknown_; }
  std::set<std::string> acked() const;
  // Waits until `more` tasks beyond the count now are acknowledged.
  bool AfterMoreAcks(size_t more, std::chrono::milliseconds timeout) const;

 private:
  void Run(int client);

  const std::string url_;
  const std::string key_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> acked_count_{0};
  std::atomic<size_t> unavailable_{0};
  std::atomic<size_t> unknown_{0};
  mutable std::mutex mu_;
  std::set<std::string> acked_;
  std::vector<std::thread> threads_;
};

}  // namespace rma::testing
