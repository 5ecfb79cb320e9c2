// Writing HTTP responses straight to client sockets, and finishing the ones the kernel could not
// take at once.
//
// Why the gateway does not use Pistache's ResponseWriter: Pistache 0.0.5 queues every write by file
// descriptor *number* and closes a connection's descriptor itself when the client goes away, so a
// response written later from another thread can reach a new connection that was given the same
// number; and ResponseWriter::send() from another thread dereferences the peer between a weak
// expired() check and lock(), a null pointer when the client leaves in between (docs/http-api.md,
// "Deferred answers"). So the gateway writes every response itself: on the reactor thread straight
// to the connection's descriptor (valid there: only that thread closes it), and for answers that
// come later through a dup() taken on the reactor thread while the connection was alive. A dup
// names the same socket for as long as it is open, whatever happens to Pistache's descriptor
// number, so a late answer reaches its own client or nobody.
//
// SocketWriter owns one thread with an epoll set. Any thread may call Write(); what the socket does
// not take at once (a large body, a slow reader) moves to that thread with its own descriptor and
// is written as the socket drains. A client that takes nothing for `stall_timeout` is dropped.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"

namespace rma::gateway {

// A file descriptor closed on destruction. Move-only.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  ~OwnedFd() { Reset(); }
  OwnedFd(OwnedFd&& other) noexcept : fd_(other.Release()) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = other.Release();
    }
    return *this;
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset();

 private:
  int fd_ = -1;
};

// A close-on-exec duplicate of `fd`. ResourceExhausted when the process is out of descriptors.
Result<OwnedFd> DupFd(int fd);

// Keeps a connection's answers in the order of its requests. The gateway reads one request at a
// time and answers it before it reads the next: bytes of a new request that arrive while an answer
// is still outstanding (pipelining) are not read, and the connection is closed once that answer is
// written (docs/http-api.md, "HTTP details"). Outstanding means from the moment the request is
// complete until the last byte of its answer is with the kernel. That moment is decided under the
// gate's mutex, held by the SocketWriter across each send of the answer: a client that has read the
// whole answer and sends its next request is never mistaken for one that pipelines.
//
// Threads: the reactor thread calls Begin and Pipelined; whichever thread writes the answer (a
// reactor, the BrokerClient, a WorkPool or the SocketWriter thread) goes through SocketWriter.
class AnswerGate {
 public:
  // The request is complete: its answer is outstanding.
  void Begin();
  // More bytes arrived. True when an answer is outstanding: the caller ignores them and the
  // connection is shut down once that answer is written.
  bool Pipelined();
  // The answer is being serialised: whether it may say keep-alive (`wanted` and not pipelined).
  bool KeepAlive(bool wanted);

 private:
  friend class SocketWriter;
  // The last byte is with the kernel or the answer was given up: returns whether the connection
  // must be shut down (requests were pipelined behind the answer).
  bool Finish() RMA_REQUIRES(mu_);
  Mutex mu_;
  bool outstanding_ RMA_GUARDED_BY(mu_) = false;
  bool close_after_ RMA_GUARDED_BY(mu_) = false;
};

enum class WriteOutcome {
  kDone,     // every byte is with the kernel
  kPending,  // the rest is with the SocketWriter thread
  kFailed,   // the client is gone (or the writer refused more): nothing more will be written
};

class SocketWriter {
 public:
  struct Options {
    Duration stall_timeout = Seconds(30);   // a client that reads nothing this long is dropped
    size_t max_pending_bytes = 256u << 20;  // unsent bytes held for slow readers, in total
  };

  SocketWriter() : SocketWriter(Options{}) {}
  explicit SocketWriter(Options options);
  ~SocketWriter();
  SocketWriter(const SocketWriter&) = delete;
  SocketWriter& operator=(const SocketWriter&) = delete;

  Status Start();
  // Drops every unfinished response (closing its descriptor) and joins the thread. Must not run
  // concurrently with Write(): the gateway stops its reactors and its BrokerClient first.
  void Stop();

  // Writes `bytes` to the socket `fd` without blocking. When `owned` is valid it is `fd` itself and
  // the call takes it; otherwise `fd` is only borrowed for this call (the reactor thread's own
  // descriptor) and is duplicated if the rest must be finished later. `close_after` shuts the write
  // side down once everything is written (Connection: close). `gate`, when given, is the
  // connection's AnswerGate: the answer stops being outstanding with its last byte.
  WriteOutcome Write(int fd, OwnedFd owned, std::string bytes, bool close_after,
                     std::shared_ptr<AnswerGate> gate = nullptr);

  size_t pending() const { return pending_count_.load(std::memory_order_relaxed); }
  // Responses given up on: client gone, stalled, or over max_pending_bytes.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct Entry {
    OwnedFd fd;
    std::string bytes;
    size_t offset = 0;
    bool close_after = false;
    Time deadline{};
    std::shared_ptr<AnswerGate> gate;
  };
  // Sends what the socket takes now, under the gate's lock when there is one; true when the entry
  // is finished (done or failed), with the gate told.
  bool SendSome(Entry& entry, Time now);
  static void FinishGate(std::shared_ptr<AnswerGate>& gate, int fd);

  void Loop();
  void Adopt(Entry entry, Time now);
  // Writes what the socket takes; true when the entry is finished (done or failed).
  bool Progress(Entry& entry, Time now);
  void Drop(int fd);

  Options options_;
  SystemClock clock_;
  std::thread thread_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> running_{false};  // between Start() and Stop(): Write() may hand work over
  std::atomic<bool> stop_{false};
  std::atomic<size_t> pending_count_{0};
  std::atomic<size_t> pending_bytes_{0};
  std::atomic<uint64_t> dropped_{0};

  Mutex mu_;
  std::vector<Entry> incoming_ RMA_GUARDED_BY(mu_);

  std::map<int, Entry> entries_;  // writer thread only, by descriptor
};

}  // namespace rma::gateway
