// Test and benchmark peers that speak the rma protocol to a real rma-broker over ZeroMQ, without
// HTTP in between: ZmqClient (what a gateway does on the client endpoint) and FakeWorker, the one
// fake worker of the test suite (a worker agent reduced to the protocol: it registers, heartbeats,
// re-registers when the broker asks, answers every TASK through a chosen backend — by default its
// payload as the result — after a chosen delay, keeps what it was sent if asked, and writes every
// TASK it receives to an ExecutionLog so duplicates can be counted exactly).
//
// A ZmqClient is used by one thread. A FakeWorker runs its own thread that owns its socket;
// ExecutionLog is thread-safe.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "protocol/codec.h"
#include "protocol/frames.h"

namespace rma::testing {

// One message from the broker on the client endpoint: its command and bodies.
struct ClientMessage {
  proto::Command command = proto::Command::kError;
  std::vector<std::string> bodies;
};

class ZmqClient {
 public:
  explicit ZmqClient(const std::string& endpoint);
  // One SUBMIT message carrying every submission of `batch` (bodies).
  bool Submit(const std::vector<proto::Submit>& batch);
  bool Send(proto::Command command, const std::string& body);
  // Waits up to `timeout` for a message; false when none came.
  bool Receive(std::chrono::milliseconds timeout, ClientMessage* out);
  // Sends one request (its `ref` set by the caller) and waits for the answer with that ref;
  // answers to other refs that arrive meanwhile are dropped. False on timeout.
  bool Call(proto::Command command, const std::string& body, uint64_t ref,
            std::chrono::milliseconds timeout, ClientMessage* answer);
  zmq::socket_t& socket() { return socket_; }

 private:
  zmq::context_t context_;
  zmq::socket_t socket_;
};

// Waits up to `timeout` for one message on `socket` (a DEALER) and copies out its command and
// bodies; false when none came or its envelope was malformed.
bool ReceiveOne(zmq::socket_t& socket, std::chrono::milliseconds timeout, ClientMessage* out);

// The `ref` of an answer body (ACCEPTED, TASK_INFO, TASK_LIST, ADMIN_REPLY, ERROR); 0 if none.
uint64_t RefOf(proto::Decoder& decoder, proto::Command command, std::string_view body);

// Every TASK any FakeWorker received: (task id, attempt, worker id).
class ExecutionLog {
 public:
  struct Entry {
    uint64_t task_id;
    uint32_t attempt;
    std::string worker_id;
  };
  void Add(uint64_t task_id, uint32_t attempt, const std::string& worker_id);
  // Times each task was received by a worker.
  std::map<uint64_t, int> Counts() const;
  // The attempt numbers each task was received with, in order.
  std::map<uint64_t, std::vector<uint32_t>> Attempts() const;
  size_t size() const;

 private:
  mutable std::mutex mu_;
  std::vector<Entry> entries_;
};

struct FakeWorkerOptions {
  std::string endpoint;
  std::string worker_id;
  std::vector<std::string> services = {"echo"};
  // How a task is answered; null: ok, with the payload as the result.
  std::function<proto::TaskResult(const proto::TaskAssignment&)> backend;
  // Chunks streamed (PARTIAL, the first as 200 text/event-stream) before the RESULT; null: none.
  std::function<std::vector<std::string>(const proto::TaskAssignment&)> stream;
  // Keep every TASK received (read with tasks()).
  bool record_tasks = false;
  uint32_t slots = 8;
  std::chrono::milliseconds heartbeat{500};
  // How long a task "runs" before its RESULT is sent (0: in the same loop iteration).
  std::function<std::chrono::microseconds()> run_time;
  // Keep (task id, time its RESULT was sent) for every result, for latency figures.
  bool record_completions = false;
};

class FakeWorker {
 public:
  FakeWorker(FakeWorkerOptions options, ExecutionLog* log);
  ~FakeWorker();  // Stop()
  void Start();
  // Leaves abruptly, as a killed process would: no goodbye, results not sent are lost.
  void Stop();
  uint64_t results_sent() const { return results_sent_; }
  // Whether the broker has welcomed it (since its last READY).
  bool registered() const { return registered_; }
  // With record_completions: what was recorded so far (call after Stop(), or accept a copy).
  std::vector<std::pair<uint64_t, std::chrono::steady_clock::time_point>> completions() const;
  // With record_tasks: every TASK received so far.
  std::vector<proto::TaskAssignment> tasks() const;

  // A backend that describes the request it got as JSON (service, body, content type, timeout,
  // and a synchronous call's method, path, query and headers) and answers 201 with content type
  // application/x-rma-test: what the gateway's tests check a call against.
  static proto::TaskResult DescribeRequest(const proto::TaskAssignment& task);

 private:
  void Run();

  FakeWorkerOptions options_;
  ExecutionLog* log_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> results_sent_{0};
  std::atomic<bool> registered_{false};
  mutable std::mutex completions_mu_;
  std::vector<std::pair<uint64_t, std::chrono::steady_clock::time_point>> completions_;
  std::vector<proto::TaskAssignment> tasks_;  // guarded by completions_mu_
  std::thread thread_;
};

}  // namespace rma::testing
