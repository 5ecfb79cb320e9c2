// A TCP relay for tests: listens on 127.0.0.1 (a port the kernel picks) and forwards every
// connection to a target, byte for byte, on its own thread. Freeze() stops moving bytes in both
// directions while keeping every connection open, which is what a peer stopped by SIGSTOP or a
// black-holing network looks like from the other side; Thaw() resumes. Used to hang PostgreSQL
// for one test without touching the server other tests share.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

namespace rma::testing {

class TcpRelay {
 public:
  // Forwards to target_host:target_port. Aborts the test binary if it cannot listen.
  TcpRelay(std::string target_host, uint16_t target_port);
  ~TcpRelay();
  TcpRelay(const TcpRelay&) = delete;
  TcpRelay& operator=(const TcpRelay&) = delete;

  uint16_t port() const { return port_; }
  void Freeze() { frozen_ = true; }
  void Thaw() { frozen_ = false; }

 private:
  void Run();

  std::string target_host_;
  uint16_t target_port_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> frozen_{false};
  std::thread thread_;
};

}  // namespace rma::testing
