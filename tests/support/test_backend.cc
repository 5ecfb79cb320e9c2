// See test_backend.h.
#include "tests/support/test_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>

namespace rma::testing {

namespace {

constexpr size_t kMaxHead = 64 * 1024;
constexpr size_t kMaxBody = 64u << 20;

std::string Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 404:
      return "Not Found";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

void Respond(int fd, int status, const std::string& content_type, const std::string& body) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\n";
  if (!content_type.empty()) head += "Content-Type: " + content_type + "\r\n";
  head += "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
  if (SendAll(fd, head)) SendAll(fd, body);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

TestBackend::TestBackend(Options options) : healthy_(options.healthy) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("socket failed");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 128) != 0) {
    std::string err = std::strerror(errno);
    close(listen_fd_);
    throw std::runtime_error("cannot listen on 127.0.0.1:" + std::to_string(options.port) + ": " +
                             err);
  }
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  acceptor_ = std::thread([this] { Accept(); });
}

TestBackend::~TestBackend() { Stop(); }

void TestBackend::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
  }
  cv_.notify_all();
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof one);
  acceptor_.join();
  std::vector<Connection> connections;
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections.swap(connections_);
  }
  for (Connection& c : connections) c.thread.join();
  close(listen_fd_);
  close(stop_fd_);
}

std::vector<TestBackend::Request> TestBackend::Requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

size_t TestBackend::Count(const std::string& prefix) const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<size_t>(
      std::count_if(requests_.begin(), requests_.end(),
                    [&](const Request& r) { return r.path.rfind(prefix, 0) == 0; }));
}

bool TestBackend::Pause(int64_t ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return stopping_; });
}

void TestBackend::Accept() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents & POLLIN) return;
    if (!(fds[0].revents & POLLIN)) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      close(fd);
      return;
    }
    // Join the connections that are done, so a long test does not pile up finished threads.
    for (auto it = connections_.begin(); it != connections_.end();) {
      if (it->done->load()) {
        it->thread.join();
        it = connections_.erase(it);
      } else {
        ++it;
      }
    }
    open_fds_.push_back(fd);
    auto done = std::make_shared<std::atomic<bool>>(false);
    connections_.push_back({std::thread([this, fd, done] {
                              Serve(fd);
                              done->store(true);
                            }),
                            done});
  }
}

void TestBackend::Serve(int fd) {
  timeval tv{10, 0};  // a client that never finishes its request cannot hold the thread forever
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string data;
  size_t head_end = std::string::npos;
  char buf[64 * 1024];
  while ((head_end = data.find("\r\n\r\n")) == std::string::npos && data.size() < kMaxHead) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  Request req;
  bool ok = head_end != std::string::npos;
  size_t content_length = 0;
  if (ok) {
    std::string head = data.substr(0, head_end);
    size_t line_end = head.find("\r\n");
    std::string line = head.substr(0, line_end);
    size_t sp1 = line.find(' ');
    size_t sp2 = line.find(' ', sp1 + 1);
    ok = sp1 != std::string::npos && sp2 != std::string::npos;
    if (ok) {
      req.method = line.substr(0, sp1);
      std::string target = line.substr(sp1 + 1, sp2 - sp1 - 1);
      size_t q = target.find('?');
      req.path = target.substr(0, q);
      if (q != std::string::npos) req.query = target.substr(q + 1);
    }
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (ok && pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      if (end == std::string::npos) end = head.size();
      std::string h = head.substr(pos, end - pos);
      pos = end + 2;
      size_t colon = h.find(':');
      if (colon == std::string::npos) continue;
      std::string value = h.substr(colon + 1);
      value.erase(0, value.find_first_not_of(' '));
      req.headers[Lower(h.substr(0, colon))] = value;
    }
    if (auto it = req.headers.find("content-length"); it != req.headers.end()) {
      const std::string& v = it->second;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), content_length);
      (void)ptr;
      if (ec != std::errc()) content_length = 0;
      content_length = std::min(content_length, kMaxBody);
    }
    req.body = data.substr(head_end + 4);
    while (ok && req.body.size() < content_length) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      req.body.append(buf, static_cast<size_t>(n));
    }
  }
  if (ok) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
    }
    std::string path = req.path;
    if (path.rfind("/v1/", 0) == 0) path = path.substr(3);
    auto number_after = [&](const std::string& prefix) -> int64_t {
      try {
        return std::stoll(path.substr(prefix.size()));
      } catch (const std::exception&) {
        return 0;
      }
    };
    if (path == "/health") {
      if (healthy()) {
        Respond(fd, 200, "text/plain", "ok");
      } else {
        Respond(fd, 503, "text/plain", "unhealthy");
      }
    } else if (path == "/control/health/up" || path == "/control/health/down") {
      SetHealthy(path.back() == 'p');
      Respond(fd, 200, "text/plain", healthy() ? "up" : "down");
    } else if (path.rfind("/echo", 0) == 0) {
      nlohmann::json j = {{"method", req.method},
                          {"path", req.path},
                          {"query", req.query},
                          {"headers", req.headers},
                          {"body", req.body}};
      Respond(fd, 200, "application/json", j.dump());
    } else if (path.rfind("/status/", 0) == 0) {
      int status = static_cast<int>(number_after("/status/"));
      Respond(fd, status, "text/plain", "status " + std::to_string(status));
    } else if (path.rfind("/slow/", 0) == 0) {
      int64_t ms = number_after("/slow/");
      if (Pause(ms)) Respond(fd, 200, "text/plain", "slow " + std::to_string(ms));
    } else if (path.rfind("/big/", 0) == 0) {
      Respond(fd, 200, "application/octet-stream",
              std::string(static_cast<size_t>(number_after("/big/")), 'x'));
    } else if (path.rfind("/stream/", 0) == 0) {
      // N server-sent events MS apart, chunked, the way a streaming backend answers.
      const int64_t count = number_after("/stream/");
      const size_t slash = path.find('/', 8);
      int64_t ms = 0;
      if (slash != std::string::npos) {
        if (std::from_chars(path.data() + slash + 1, path.data() + path.size(), ms).ec !=
            std::errc()) {
          ms = 0;
        }
      }
      bool open = SendAll(fd,
                          "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                          "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
                          "Connection: close\r\n\r\n");
      for (int64_t i = 0; open && i < count; ++i) {
        if (i > 0 && !Pause(ms)) {
          open = false;
          break;
        }
        const std::string event = "data: " + std::to_string(i) + "\n\n";
        char size[32];
        std::snprintf(size, sizeof size, "%zx\r\n", event.size());
        open = SendAll(fd, size + event + "\r\n");
      }
      if (open) SendAll(fd, "0\r\n\r\n");
    } else if (path == "/" && req.method == "POST") {
      auto ct = req.headers.find("content-type");
      Respond(fd, 200, ct == req.headers.end() ? "application/octet-stream" : ct->second, req.body);
    } else {
      Respond(fd, 404, "text/plain", "no route for " + req.path);
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  open_fds_.erase(std::remove(open_fds_.begin(), open_fds_.end(), fd), open_fds_.end());
  close(fd);
}

}  // namespace rma::testing
