// See tcp_relay.h. One thread polls the listening socket and every pair of sockets; while frozen
// it polls only for new connections and the stop signal (every 20 ms it looks again), so bytes
// wait in the kernel's buffers exactly as they would in front of a stopped process.
#include "tests/support/tcp_relay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

namespace rma::testing {
namespace {

[[noreturn]] void Die(const char* what) {
  std::perror(what);
  std::abort();
}

int ConnectTo(const std::string& host, uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1 ||
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

TcpRelay::TcpRelay(std::string target_host, uint16_t target_port)
    : target_host_(std::move(target_host)), target_port_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) Die("relay socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Die("relay bind");
  if (listen(listen_fd_, 64) != 0) Die("relay listen");
  socklen_t len = sizeof addr;
  if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) Die("getsockname");
  port_ = ntohs(addr.sin_port);
  stop_fd_ = eventfd(0, EFD_CLOEXEC);
  if (stop_fd_ < 0) Die("relay eventfd");
  thread_ = std::thread([this] { Run(); });
}

TcpRelay::~TcpRelay() {
  uint64_t one = 1;
  if (write(stop_fd_, &one, sizeof one) != sizeof one) std::abort();
  thread_.join();
  close(stop_fd_);
  close(listen_fd_);
}

void TcpRelay::Run() {
  struct Pair {
    int a, b;  // client side, target side
  };
  std::vector<Pair> pairs;
  auto close_pair = [](Pair& p) {
    close(p.a);
    close(p.b);
    p.a = p.b = -1;
  };
  char buffer[64 * 1024];
  for (;;) {
    const bool frozen = frozen_;
    std::vector<pollfd> fds = {{stop_fd_, POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    if (!frozen) {
      for (const Pair& p : pairs) {
        fds.push_back({p.a, POLLIN, 0});
        fds.push_back({p.b, POLLIN, 0});
      }
    }
    if (poll(fds.data(), fds.size(), 20) < 0) continue;
    if (fds[0].revents != 0) break;
    if (fds[1].revents & POLLIN) {
      int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) {
        int target = ConnectTo(target_host_, target_port_);
        if (target < 0) {
          close(client);
        } else {
          pairs.push_back({client, target});
        }
      }
    }
    if (frozen) continue;
    for (size_t i = 0; i < pairs.size() && 2 + 2 * i + 1 < fds.size(); ++i) {
      Pair& p = pairs[i];
      for (int side = 0; side < 2; ++side) {
        if (p.a < 0 || fds[2 + 2 * i + side].revents == 0) continue;
        int from = side == 0 ? p.a : p.b;
        int to = side == 0 ? p.b : p.a;
        ssize_t n = read(from, buffer, sizeof buffer);
        bool ok = n > 0;
        for (ssize_t off = 0; ok && off < n;) {
          ssize_t w = send(to, buffer + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
          ok = w > 0;
          off += ok ? w : 0;
        }
        if (!ok) close_pair(p);
      }
    }
    std::erase_if(pairs, [](const Pair& p) { return p.a < 0; });
  }
  for (Pair& p : pairs) close_pair(p);
}

}  // namespace rma::testing
