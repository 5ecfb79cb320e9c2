// See socket_writer.h.
#include "gateway/socket_writer.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rma::gateway {

namespace {

// Bytes written, 0 when the socket is full, -1 when the client is gone.
ssize_t SendNow(int fd, const char* data, size_t len) {
  for (;;) {
    ssize_t n = ::send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    return -1;
  }
}

}  // namespace

void OwnedFd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<OwnedFd> DupFd(int fd) {
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) {
    return Status::ResourceExhausted(std::string("cannot duplicate a client socket: ") +
                                     std::strerror(errno));
  }
  return OwnedFd(copy);
}

void AnswerGate::Begin() {
  MutexLock lock(&mu_);
  outstanding_ = true;
}

bool AnswerGate::Pipelined() {
  MutexLock lock(&mu_);
  if (!outstanding_) return false;
  close_after_ = true;
  return true;
}

bool AnswerGate::KeepAlive(bool wanted) {
  MutexLock lock(&mu_);
  return wanted && !close_after_;
}

bool AnswerGate::Finish() {
  outstanding_ = false;
  return close_after_;
}

void SocketWriter::FinishGate(std::shared_ptr<AnswerGate>& gate, int fd) {
  if (!gate) return;
  bool shut = false;
  {
    MutexLock lock(&gate->mu_);
    shut = gate->Finish();
  }
  // Both ways, so Pistache sees the stream end and lets the connection go.
  if (shut) ::shutdown(fd, SHUT_RDWR);
  gate.reset();
}

// ---- SocketStream ---------------------------------------------------------------------------

bool SocketStream::Append(std::string_view bytes) {
  MutexLock lock(&mu_);
  if (over_ || finishing_) return false;
  return Put(bytes);
}

bool SocketStream::Put(std::string_view bytes) {
  if (!with_writer_ && offset_ == buffer_.size()) {
    // Nothing is waiting: straight to the socket, as the reactor writes a whole answer.
    buffer_.clear();
    offset_ = 0;
    ssize_t n = SendNow(fd_.get(), bytes.data(), bytes.size());
    if (n < 0) {
      Break();
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    if (bytes.empty()) return true;
  }
  if (buffer_.size() - offset_ + bytes.size() > max_buffered_) {
    spdlog::debug("a streamed answer's client reads too slowly ({} bytes wait): cut",
                  buffer_.size() - offset_ + bytes.size());
    Break();
    return false;
  }
  if (offset_ > 0 && offset_ >= buffer_.size() / 2) {  // keep the buffer from creeping
    buffer_.erase(0, offset_);
    offset_ = 0;
  }
  buffer_.append(bytes);
  if (!with_writer_) {
    if (!writer_->AdoptStream(shared_from_this())) {
      Break();
      return false;
    }
    with_writer_ = true;
  }
  return true;
}

void SocketStream::Finish(std::string_view last, bool close_after) {
  MutexLock lock(&mu_);
  if (over_ || finishing_) return;
  finishing_ = true;
  close_after_ = close_after;
  if (!with_writer_ && offset_ == buffer_.size()) {
    // The gate's lock spans the last send and the decision that the answer is out (AnswerGate).
    bool shut = false;
    ssize_t n = 0;
    {
      MutexLock gate_lock(&gate_->mu_);
      n = SendNow(fd_.get(), last.data(), last.size());
      if (n < 0 || static_cast<size_t>(n) == last.size()) {
        shut = gate_->Finish();
        over_ = true;
      }
    }
    if (over_) {
      broken_ = n < 0;
      if (shut || n < 0) {
        ::shutdown(fd_.get(), SHUT_RDWR);
      } else if (close_after) {
        ::shutdown(fd_.get(), SHUT_WR);
      }
      return;
    }
    last.remove_prefix(static_cast<size_t>(n));
  }
  buffer_.append(last);
  if (!with_writer_) {
    if (!writer_->AdoptStream(shared_from_this())) return Break();
    with_writer_ = true;
  }
}

void SocketStream::Abort() {
  MutexLock lock(&mu_);
  Break();
}

bool SocketStream::broken() const {
  MutexLock lock(&mu_);
  return broken_;
}

size_t SocketStream::buffered() const {
  MutexLock lock(&mu_);
  return buffer_.size() - offset_;
}

void SocketStream::Break() {
  if (over_) return;
  over_ = true;
  broken_ = true;
  buffer_ = std::string();
  offset_ = 0;
  ::shutdown(fd_.get(), SHUT_RDWR);
  MutexLock gate_lock(&gate_->mu_);
  (void)gate_->Finish();
}

bool SocketStream::SendBuffered(bool* progressed) {
  while (offset_ < buffer_.size()) {
    ssize_t n = SendNow(fd_.get(), buffer_.data() + offset_, buffer_.size() - offset_);
    if (n < 0) return false;
    if (n == 0) return true;
    offset_ += static_cast<size_t>(n);
    *progressed = true;
  }
  return true;
}

bool SocketStream::Drain(bool* progressed) {
  MutexLock lock(&mu_);
  *progressed = false;
  if (over_) {
    with_writer_ = false;
    return true;
  }
  if (!finishing_) {
    if (!SendBuffered(progressed)) {
      Break();
      with_writer_ = false;
      return true;
    }
    if (offset_ < buffer_.size()) return false;
    buffer_.clear();
    offset_ = 0;
    with_writer_ = false;  // idle until the next Append
    return true;
  }
  bool shut = false;
  bool ok = true;
  {
    MutexLock gate_lock(&gate_->mu_);
    ok = SendBuffered(progressed);
    if (!ok || offset_ == buffer_.size()) {
      shut = gate_->Finish();
      over_ = true;
    }
  }
  if (!over_) return false;
  broken_ = !ok;
  if (shut || !ok) {
    ::shutdown(fd_.get(), SHUT_RDWR);
  } else if (close_after_) {
    ::shutdown(fd_.get(), SHUT_WR);
  }
  buffer_ = std::string();
  offset_ = 0;
  with_writer_ = false;
  return true;
}

// ---- SocketWriter ---------------------------------------------------------------------------

SocketWriter::SocketWriter(Options options) : options_(options) {}

SocketWriter::~SocketWriter() { Stop(); }

Status SocketWriter::Start() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_fd_ < 0 || wake_fd_ < 0) return Status::Internal("epoll/eventfd failed");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_fd_;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    return Status::Internal("epoll_ctl failed");
  }
  thread_ = std::thread([this] { Loop(); });
  running_.store(true);
  return Status::Ok();
}

void SocketWriter::Stop() {
  running_.store(false);
  if (thread_.joinable()) {
    stop_.store(true);
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
    thread_.join();
  }
  std::vector<Entry> incoming;
  {
    MutexLock lock(&mu_);
    incoming.swap(incoming_);
  }
  for (Entry& e : incoming) {
    if (e.stream) e.stream->Abort();
    FinishGate(e.gate, e.fd.get());
  }
  for (auto& [fd, e] : entries_) {
    if (e.stream) e.stream->Abort();
    FinishGate(e.gate, fd);
  }
  entries_.clear();
  pending_count_.store(0);
  pending_bytes_.store(0);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  epoll_fd_ = wake_fd_ = -1;
}

WriteOutcome SocketWriter::Write(int fd, OwnedFd owned, std::string bytes, bool close_after,
                                 std::shared_ptr<AnswerGate> gate) {
  ssize_t n = 0;
  bool shut = false;
  if (gate) {
    // The gate's lock spans the send and the decision that the answer is out (see AnswerGate).
    MutexLock lock(&gate->mu_);
    n = SendNow(fd, bytes.data(), bytes.size());
    if (n < 0 || static_cast<size_t>(n) == bytes.size()) shut = gate->Finish();
  } else {
    n = SendNow(fd, bytes.data(), bytes.size());
  }
  if (n < 0) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    if (shut) ::shutdown(fd, SHUT_RDWR);
    return WriteOutcome::kFailed;
  }
  auto written = static_cast<size_t>(n);
  if (written == bytes.size()) {
    if (shut) {
      ::shutdown(fd, SHUT_RDWR);
    } else if (close_after) {
      ::shutdown(fd, SHUT_WR);
    }
    return WriteOutcome::kDone;
  }
  // The socket is full: the rest goes to the writer thread, with a descriptor of its own.
  Entry entry;
  entry.gate = std::move(gate);
  size_t rest = bytes.size() - written;
  if (!running_.load() ||
      pending_bytes_.load(std::memory_order_relaxed) + rest > options_.max_pending_bytes) {
    dropped_.fetch_add(1, std::memory_order_relaxed);
    FinishGate(entry.gate, fd);
    return WriteOutcome::kFailed;
  }
  if (!owned.valid()) {
    auto copy = DupFd(fd);
    if (!copy.ok()) {
      dropped_.fetch_add(1, std::memory_order_relaxed);
      FinishGate(entry.gate, fd);
      return WriteOutcome::kFailed;
    }
    owned = std::move(*copy);
  }
  entry.fd = std::move(owned);
  entry.bytes = std::move(bytes);
  entry.offset = written;
  entry.close_after = close_after;
  pending_count_.fetch_add(1, std::memory_order_relaxed);
  pending_bytes_.fetch_add(rest, std::memory_order_relaxed);
  {
    MutexLock lock(&mu_);
    incoming_.push_back(std::move(entry));
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  return WriteOutcome::kPending;
}

std::shared_ptr<SocketStream> SocketWriter::OpenStream(OwnedFd fd, std::shared_ptr<AnswerGate> gate,
                                                       size_t max_buffered) {
  if (!gate) gate = std::make_shared<AnswerGate>();
  return std::make_shared<SocketStream>(this, std::move(fd), std::move(gate), max_buffered);
}

bool SocketWriter::AdoptStream(std::shared_ptr<SocketStream> stream) {
  Entry entry;
  entry.stream = std::move(stream);
  if (!running_.load()) return false;  // stopping: the caller breaks the stream
  pending_count_.fetch_add(1, std::memory_order_relaxed);
  {
    MutexLock lock(&mu_);
    incoming_.push_back(std::move(entry));
  }
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  return true;
}

void SocketWriter::Adopt(Entry entry, Time now) {
  const int fd = entry.stream ? entry.stream->fd_.get() : entry.fd.get();
  entry.deadline = now + options_.stall_timeout;
  if (Progress(entry, now)) {
    pending_count_.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  epoll_event ev{};
  ev.events = EPOLLOUT;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    spdlog::warn("cannot watch a client socket: {}", std::strerror(errno));
    if (entry.stream) entry.stream->Abort();
    pending_bytes_.fetch_sub(entry.bytes.size() - entry.offset, std::memory_order_relaxed);
    pending_count_.fetch_sub(1, std::memory_order_relaxed);
    dropped_.fetch_add(1, std::memory_order_relaxed);
    FinishGate(entry.gate, entry.fd.get());
    return;
  }
  entries_.emplace(fd, std::move(entry));
}

bool SocketWriter::Progress(Entry& entry, Time now) {
  if (entry.stream) {
    bool progressed = false;
    const bool done = entry.stream->Drain(&progressed);
    if (progressed) entry.deadline = now + options_.stall_timeout;
    return done;
  }
  if (!entry.gate) return SendSome(entry, now);
  bool finished = false;
  bool shut = false;
  {
    MutexLock lock(&entry.gate->mu_);
    finished = SendSome(entry, now);
    if (finished) shut = entry.gate->Finish();
  }
  if (finished) {
    if (shut) ::shutdown(entry.fd.get(), SHUT_RDWR);
    entry.gate.reset();
  }
  return finished;
}

bool SocketWriter::SendSome(Entry& entry, Time now) {
  while (entry.offset < entry.bytes.size()) {
    ssize_t n = SendNow(entry.fd.get(), entry.bytes.data() + entry.offset,
                        entry.bytes.size() - entry.offset);
    if (n < 0) {
      pending_bytes_.fetch_sub(entry.bytes.size() - entry.offset, std::memory_order_relaxed);
      dropped_.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    if (n == 0) return false;
    entry.offset += static_cast<size_t>(n);
    pending_bytes_.fetch_sub(static_cast<size_t>(n), std::memory_order_relaxed);
    entry.deadline = now + options_.stall_timeout;
  }
  if (entry.close_after) ::shutdown(entry.fd.get(), SHUT_WR);
  return true;
}

void SocketWriter::Drop(int fd) {
  auto it = entries_.find(fd);
  if (it == entries_.end()) return;
  ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  FinishGate(it->second.gate, fd);  // a stalled answer: given up
  entries_.erase(it);
  pending_count_.fetch_sub(1, std::memory_order_relaxed);
}

void SocketWriter::Loop() {
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  while (!stop_.load()) {
    Time now = clock_.Now();
    int timeout_ms = 1000;
    for (const auto& [fd, e] : entries_) {
      timeout_ms = std::min<int>(
          timeout_ms, static_cast<int>(std::max<int64_t>(0, ToMs(e.deadline - now) + 1)));
    }
    int n = ::epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
    if (n < 0 && errno != EINTR) {
      spdlog::error("socket writer: epoll_wait failed: {}", std::strerror(errno));
      break;
    }
    now = clock_.Now();
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t drained = 0;
        (void)!::read(wake_fd_, &drained, sizeof drained);
        std::vector<Entry> adopted;
        {
          MutexLock lock(&mu_);
          adopted.swap(incoming_);
        }
        for (Entry& e : adopted) Adopt(std::move(e), now);
        continue;
      }
      auto it = entries_.find(fd);
      if (it == entries_.end()) continue;
      if (Progress(it->second, now)) Drop(fd);
    }
    std::vector<int> stalled;
    for (const auto& [fd, e] : entries_) {
      if (e.deadline <= now) stalled.push_back(fd);
    }
    for (int fd : stalled) {
      Entry& e = entries_.at(fd);
      if (e.stream) e.stream->Abort();
      pending_bytes_.fetch_sub(e.bytes.size() - e.offset, std::memory_order_relaxed);
      dropped_.fetch_add(1, std::memory_order_relaxed);
      Drop(fd);
    }
  }
}

}  // namespace rma::gateway
