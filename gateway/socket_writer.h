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
#include <string_view>
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
  friend class SocketStream;
  // The last byte is with the kernel or the answer was given up: returns whether the connection
  // must be shut down (requests were pipelined behind the answer).
  bool Finish() RMA_REQUIRES(mu_);
  Mutex mu_;
  bool outstanding_ RMA_GUARDED_BY(mu_) = false;
  bool close_after_ RMA_GUARDED_BY(mu_) = false;
};

class SocketWriter;

// An answer written in pieces as they are produced (a streamed service call), in order, from any
// thread. What the socket does not take at once waits in the stream's own buffer, at most
// `max_buffered` bytes: the SocketWriter thread writes it as the socket drains. A client that
// reads slower than the stream produces past that bound, stops reading for the writer's stall
// timeout, or closes its connection breaks the stream: the connection is shut down and nothing
// more is written. Memory per stream is therefore bounded whatever the client does.
class SocketStream : public std::enable_shared_from_this<SocketStream> {
 public:
  SocketStream(SocketWriter* writer, OwnedFd fd, std::shared_ptr<AnswerGate> gate,
               size_t max_buffered)
      : writer_(writer), fd_(std::move(fd)), gate_(std::move(gate)), max_buffered_(max_buffered) {}
  SocketStream(const SocketStream&) = delete;
  SocketStream& operator=(const SocketStream&) = delete;

  // Queues `bytes` after everything before them. False when the stream is broken (see above):
  // the caller stops producing.
  bool Append(std::string_view bytes);
  // The last bytes: the answer is complete once they are with the kernel (the connection's gate
  // finishes then); `close_after` shuts the write side down after them (Connection: close).
  void Finish(std::string_view last, bool close_after);
  // Gives up: the connection is shut down at once, the client sees an incomplete answer.
  void Abort();
  // Whether the stream broke (client gone, too slow) or was aborted.
  bool broken() const;
  size_t buffered() const;

 private:
  friend class SocketWriter;
  // Queues or sends `bytes`; hands the stream to the writer thread when bytes are left over.
  bool Put(std::string_view bytes) RMA_REQUIRES(mu_);
  // Shuts the connection down and tells the gate, once.
  void Break() RMA_REQUIRES(mu_);
  // Sends what the socket takes of the buffer; false when the client is gone.
  bool SendBuffered(bool* progressed) RMA_REQUIRES(mu_);
  // The writer thread's part: sends what the socket takes. True when the writer is done with the
  // stream for now (everything sent, finished, or broken).
  bool Drain(bool* progressed);

  SocketWriter* const writer_;
  const OwnedFd fd_;
  std::shared_ptr<AnswerGate> gate_;
  const size_t max_buffered_;
  mutable Mutex mu_;
  std::string buffer_ RMA_GUARDED_BY(mu_);
  size_t offset_ RMA_GUARDED_BY(mu_) = 0;
  bool with_writer_ RMA_GUARDED_BY(mu_) = false;  // the writer thread watches the socket for it
  bool finishing_ RMA_GUARDED_BY(mu_) = false;    // the last bytes are queued
  bool close_after_ RMA_GUARDED_BY(mu_) = false;
  bool over_ RMA_GUARDED_BY(mu_) = false;  // finished (last byte out) or broken
  bool broken_ RMA_GUARDED_BY(mu_) = false;
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

  // A stream writing to `fd` (a descriptor of its own, taken), answering the request whose
  // connection has `gate`. See SocketStream.
  std::shared_ptr<SocketStream> OpenStream(OwnedFd fd, std::shared_ptr<AnswerGate> gate,
                                           size_t max_buffered);

  size_t pending() const { return pending_count_.load(std::memory_order_relaxed); }
  // Responses given up on: client gone, stalled, or over max_pending_bytes.
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  friend class SocketStream;
  struct Entry {
    std::shared_ptr<SocketStream> stream;  // a stream's entry: the stream holds fd and bytes
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
  // A stream has bytes the socket did not take: its entry joins the writer thread.
  // False when the writer is stopping (nothing more is written).
  bool AdoptStream(std::shared_ptr<SocketStream> stream);
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
