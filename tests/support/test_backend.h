// Test support: TestBackend, a small real HTTP/1.1 server on 127.0.0.1 standing in for a service
// backend (rag, ocr, ...) in worker tests. One thread accepts, one thread serves each connection
// (Connection: close, Content-Length bodies only), so a slow request never delays the health
// endpoint. The rma-test-backend program (test_backend_main.cc) runs the same server on its own
// for end-to-end tests.
//
// Routes (an optional "/v1" prefix is ignored, to test base paths):
//   GET  /health                 200 "ok", or 503 while unhealthy
//   POST /control/health/up|down  switch the health answer
//   ANY  /echo...                200 JSON {"method","path","query","headers","body"}
//   ANY  /status/N               status N, text/plain "status N"
//   ANY  /slow/MS                200 after MS milliseconds (cut short when the server stops)
//   ANY  /big/N                  200 with N bytes of 'x'
//   ANY  /stream/N/MS            200 text/event-stream, chunked: N events "data: i", MS apart
//   POST /                       200 with the request body and content type (asynchronous tasks)
//   anything else                404
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace rma::testing {

class TestBackend {
 public:
  struct Options {
    int port = 0;  // 0: any free port
    bool healthy = true;
  };
  struct Request {
    std::string method;
    std::string path;
    std::string query;
    std::map<std::string, std::string> headers;  // names in lower case
    std::string body;
  };

  // Listens at once; throws std::runtime_error when it cannot.
  explicit TestBackend(Options options);
  TestBackend() : TestBackend(Options{}) {}
  ~TestBackend();
  TestBackend(const TestBackend&) = delete;
  TestBackend& operator=(const TestBackend&) = delete;

  int port() const { return port_; }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void SetHealthy(bool healthy) { healthy_.store(healthy); }
  bool healthy() const { return healthy_.load(); }
  // Every request received so far (once its body is read), oldest first.
  std::vector<Request> Requests() const;
  // How many requests with a path starting with `prefix` arrived.
  size_t Count(const std::string& prefix) const;
  // Closes the listening socket and every connection, and joins the threads. Idempotent.
  void Stop();

 private:
  void Accept();
  void Serve(int fd);
  // Waits up to `ms` or until Stop(); false when stopped.
  bool Pause(int64_t ms);

  std::atomic<bool> healthy_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  struct Connection {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Connection> connections_;
  std::vector<int> open_fds_;
  std::vector<Request> requests_;
};

}  // namespace rma::testing
