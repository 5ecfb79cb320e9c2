// Test support: a raw HTTP/1.1 connection, for what curl hides — requests without a Connection
// header on one kept-alive socket, exact bytes, clients that vanish mid-request (RST), and reading
// whether anything else arrives on a socket. Used from one thread at a time.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>

namespace rma::testing {

struct RawResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

class RawConnection {
 public:
  // Connects to 127.0.0.1:port; an invalid connection (fd() < 0) when that fails.
  explicit RawConnection(int port);
  ~RawConnection();
  RawConnection(RawConnection&& other) noexcept;
  RawConnection& operator=(RawConnection&&) = delete;
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  int fd() const { return fd_; }
  bool Send(const std::string& bytes);
  // Reads one whole response (Content-Length framed; a HEAD answer with `head_only`). nullopt on
  // timeout, malformed data or end of stream.
  std::optional<RawResponse> Read(std::chrono::milliseconds timeout, bool head_only = false);
  // Whether the server ends the stream (after anything already buffered) within `timeout`.
  bool ClosedByServer(std::chrono::milliseconds timeout);
  // Bytes that arrived and were not part of a response read so far.
  const std::string& buffered() const { return buffer_; }
  // Closes with a TCP reset (SO_LINGER 0), like a client that crashed.
  void Abort();
  void Close();

 private:
  bool Fill(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

// "METHOD target HTTP/1.1" with Host, the extra header lines (each "Name: value") and the body
// (Content-Length when the body is not empty or the method sends one).
std::string RawRequest(const std::string& method, const std::string& target,
                       const std::string& headers = "", const std::string& body = "");

}  // namespace rma::testing
