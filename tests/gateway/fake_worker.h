// Test support: a worker that speaks the protocol directly (protocol/) instead of running
// rma-worker, so a test sees exactly what the broker hands a worker for a synchronous call (method,
// path, query, headers, content type, body) and chooses the backend's answer (status, content type,
// body). One thread owns the DEALER socket; the recorded assignments are read under a mutex.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "protocol/messages.h"

namespace rma::testing {

class FakeWorker {
 public:
  // The backend: how a task is answered. The default describes the request it got as JSON and
  // answers 201 with content type application/x-rma-test.
  using Backend = std::function<proto::TaskResult(const proto::TaskAssignment&)>;

  FakeWorker(std::string broker_endpoint, std::string worker_id, std::vector<std::string> services,
             int heartbeat_ms, Backend backend = nullptr);
  ~FakeWorker();
  FakeWorker(const FakeWorker&) = delete;
  FakeWorker& operator=(const FakeWorker&) = delete;

  bool registered() const { return registered_.load(); }
  std::vector<proto::TaskAssignment> tasks() const;

  static proto::TaskResult DescribeRequest(const proto::TaskAssignment& task);

 private:
  void Loop();

  std::string endpoint_;
  std::string worker_id_;
  std::vector<std::string> services_;
  int heartbeat_ms_;
  Backend backend_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> registered_{false};
  mutable std::mutex mu_;
  std::vector<proto::TaskAssignment> tasks_;  // guarded by mu_
  std::thread thread_;
};

}  // namespace rma::testing
