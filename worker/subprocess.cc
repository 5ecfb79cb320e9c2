// See subprocess.h.
#include "worker/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

extern char** environ;

namespace rma::worker {

namespace {

using SteadyTime = std::chrono::steady_clock::time_point;

// Without pidfd (kernels before 5.3) the child's exit is polled this often.
constexpr int kExitPollMs = 20;
constexpr size_t kChunk = 64 * 1024;
// Reads per descriptor per wake-up: a child writing without pause cannot keep us from our timers.
constexpr int kReadsPerWake = 64;

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Close(); }
  int get() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  void Reset(int fd) {
    Close();
    fd_ = fd;
  }
  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Moves `fd` above 2: a worker started with a closed stdin/stdout could otherwise get a pipe on
// 0..2, and the dup2 calls in the child would overwrite one pipe end with another.
int AboveStdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  close(fd);
  return moved;
}

Status MakePipe(Fd* read_end, Fd* write_end) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::Unavailable(Errno("pipe"));
  read_end->Reset(AboveStdio(fds[0]));
  write_end->Reset(AboveStdio(fds[1]));
  if (!read_end->open() || !write_end->open()) return Status::Unavailable(Errno("fcntl"));
  return Status::Ok();
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

// A write to the stdin of a child that stopped reading raises SIGPIPE on the writing thread. The
// worker ignores SIGPIPE, but a library must not rely on that: block it on this thread while the
// child runs and discard one raised meanwhile.
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~ScopedSigpipeBlock() {
    if (sigismember(&old_, SIGPIPE)) return;  // it was blocked before: not ours to clear
    sigset_t pending;
    sigemptyset(&pending);
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
      struct timespec zero {};
      sigtimedwait(&pipe_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t pipe_;
  sigset_t old_;
};

// The worker's environment with `extra` NAME=VALUE entries added or replaced.
std::vector<std::string> BuildEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  auto overridden = [&](std::string_view entry) {
    std::string_view name = entry.substr(0, entry.find('='));
    return std::any_of(extra.begin(), extra.end(), [&](const std::string& e) {
      return std::string_view(e).substr(0, e.find('=')) == name;
    });
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (!overridden(*e)) out.emplace_back(*e);
  }
  out.insert(out.end(), extra.begin(), extra.end());
  return out;
}

int PidfdOpen(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

// Whether the child has exited, without reaping it (the zombie keeps its pid and process group
// reserved until we have killed whatever it left behind).
bool HasExited(pid_t pid) {
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    return errno == ECHILD;  // already reaped: cannot happen here, but never wait forever
  }
  return info.si_pid == pid;
}

int MsUntil(SteadyTime now, SteadyTime t) {
  if (t <= now) return 0;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count() + 1;
  return static_cast<int>(std::min<int64_t>(ms, 60'000));
}

Result<pid_t> Spawn(const SubprocessRequest& request, int stdin_fd, int stdout_fd, int stderr_fd) {
  if (request.argv.empty() || request.argv[0].empty()) {
    return Status::InvalidArgument("no program to run");
  }
  std::vector<std::string> argv_storage = request.argv;
  std::vector<char*> argv;
  argv.reserve(argv_storage.size() + 1);
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_storage = BuildEnvironment(request.env);
  std::vector<char*> envp;
  envp.reserve(env_storage.size() + 1);
  for (std::string& e : env_storage) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, stdin_fd, 0);
  posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, stderr_fd, 2);
  // Every other descriptor (sockets opened by other threads without CLOEXEC included) is closed.
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // The worker blocks SIGINT/SIGTERM for its signalfd and ignores SIGPIPE; the command must start
  // with the ordinary defaults.
  sigset_t empty;
  sigemptyset(&empty);
  posix_spawnattr_setsigmask(&attr, &empty);
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGCHLD}) {
    sigaddset(&defaults, s);
  }
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr, 0);  // a new group led by the child: killable as a whole
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const bool search = request.argv[0].find('/') == std::string::npos;
  int rc = search ? posix_spawnp(&pid, argv[0], &actions, &attr, argv.data(), envp.data())
                  : posix_spawn(&pid, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return Status::Unavailable("cannot start '" + request.argv[0] + "': " + std::strerror(rc));
  }
  return pid;
}

}  // namespace

Result<SubprocessResult> RunSubprocess(const SubprocessRequest& request,
                                       const CancelToken* cancel) {
  Fd in_read, in_write, out_read, out_write, err_read, err_write;
  RMA_RETURN_IF_ERROR(MakePipe(&in_read, &in_write));
  RMA_RETURN_IF_ERROR(MakePipe(&out_read, &out_write));
  RMA_RETURN_IF_ERROR(MakePipe(&err_read, &err_write));
  Fd wake(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.open()) return Status::Unavailable(Errno("eventfd"));

  ScopedSigpipeBlock no_sigpipe;
  RMA_ASSIGN_OR_RETURN(pid_t pid, Spawn(request, in_read.get(), out_write.get(), err_write.get()));
  in_read.Close();
  out_write.Close();
  err_write.Close();
  SetNonBlocking(in_write.get());
  SetNonBlocking(out_read.get());
  SetNonBlocking(err_read.get());
  Fd pidfd(PidfdOpen(pid));

  // Declared after `wake`, so it is gone (and the callback can no longer run) before wake closes.
  CancelToken::Subscription subscription;
  if (cancel != nullptr) {
    const int wake_fd = wake.get();
    subscription = cancel->OnCancel([wake_fd] {
      uint64_t one = 1;
      (void)!write(wake_fd, &one, sizeof one);
    });
  }

  SubprocessResult result;
  result.pid = pid;
  std::optional<SubprocessEnd> stopped;  // why we are killing it, once we are
  const SteadyTime deadline = std::chrono::steady_clock::now() + request.timeout;
  SteadyTime kill_at{};
  bool killed = false;
  bool exited = false;
  SteadyTime drain_until{};
  size_t written = 0;
  if (request.input.empty()) in_write.Close();

  auto stop = [&](SubprocessEnd why, SteadyTime now) {
    if (stopped) return;
    stopped = why;
    in_write.Close();
    kill(-pid, SIGTERM);
    kill_at = now + request.kill_grace;
  };

  for (;;) {
    SteadyTime now = std::chrono::steady_clock::now();
    if (exited && ((!out_read.open() && !err_read.open()) || now >= drain_until)) break;

    pollfd fds[5];
    nfds_t n = 0;
    int in_i = -1, out_i = -1, err_i = -1, pid_i = -1, wake_i = -1;
    if (in_write.open()) {
      in_i = static_cast<int>(n);
      fds[n++] = {in_write.get(), POLLOUT, 0};
    }
    if (out_read.open()) {
      out_i = static_cast<int>(n);
      fds[n++] = {out_read.get(), POLLIN, 0};
    }
    if (err_read.open()) {
      err_i = static_cast<int>(n);
      fds[n++] = {err_read.get(), POLLIN, 0};
    }
    if (!exited && pidfd.open()) {
      pid_i = static_cast<int>(n);
      fds[n++] = {pidfd.get(), POLLIN, 0};
    }
    if (!stopped) {
      wake_i = static_cast<int>(n);
      fds[n++] = {wake.get(), POLLIN, 0};
    }
    int timeout_ms = 60'000;
    if (!stopped) timeout_ms = std::min(timeout_ms, MsUntil(now, deadline));
    if (stopped && !killed && !exited) timeout_ms = std::min(timeout_ms, MsUntil(now, kill_at));
    if (exited) timeout_ms = std::min(timeout_ms, MsUntil(now, drain_until));
    if (!exited && !pidfd.open()) timeout_ms = std::min(timeout_ms, kExitPollMs);

    if (poll(fds, n, timeout_ms) < 0 && errno != EINTR) {
      // Cannot happen with valid descriptors; stop the child rather than spin.
      stop(SubprocessEnd::kCancelled, now);
    }
    now = std::chrono::steady_clock::now();

    if (wake_i >= 0 && (fds[wake_i].revents & POLLIN)) stop(SubprocessEnd::kCancelled, now);
    if (in_i >= 0 && in_write.open() && (fds[in_i].revents & (POLLOUT | POLLERR | POLLHUP))) {
      while (written < request.input.size()) {
        size_t len = std::min(kChunk, request.input.size() - written);
        ssize_t w = write(in_write.get(), request.input.data() + written, len);
        if (w > 0) {
          written += static_cast<size_t>(w);
          continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) break;
        in_write.Close();  // EPIPE: the command does not read (all of) its input; not an error
        break;
      }
      if (written == request.input.size()) in_write.Close();
    }
    if (out_i >= 0 && (fds[out_i].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buf[kChunk];
      for (int reads = 0; reads < kReadsPerWake; ++reads) {
        ssize_t r = read(out_read.get(), buf, sizeof buf);
        if (r > 0) {
          if (stopped) continue;  // being killed: drain so it cannot block on a full pipe
          size_t room = request.max_output_bytes - result.output.size();
          if (static_cast<size_t>(r) > room) {
            if (request.on_output && room > 0) request.on_output(std::string_view(buf, room));
            result.output.append(buf, room);
            stop(SubprocessEnd::kOutputTooLarge, now);
            continue;
          }
          if (request.on_output) request.on_output(std::string_view(buf, static_cast<size_t>(r)));
          result.output.append(buf, static_cast<size_t>(r));
          continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) break;
        out_read.Close();  // EOF
        break;
      }
    }
    if (err_i >= 0 && (fds[err_i].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buf[kChunk];
      for (int reads = 0; reads < kReadsPerWake; ++reads) {
        ssize_t r = read(err_read.get(), buf, sizeof buf);
        if (r > 0) {
          result.error_tail.append(buf, static_cast<size_t>(r));
          if (result.error_tail.size() > request.error_tail_bytes) {
            result.error_tail.erase(0, result.error_tail.size() - request.error_tail_bytes);
          }
          continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) break;
        err_read.Close();
        break;
      }
    }
    if (!exited &&
        ((pid_i >= 0 && (fds[pid_i].revents & POLLIN)) || (!pidfd.open() && HasExited(pid)))) {
      exited = true;
      // The leader is a zombie, so its process group id cannot be reused yet: kill whatever it
      // left running. Descendants that left the group may still hold the pipes; we wait for them
      // only for the grace period.
      kill(-pid, SIGKILL);
      drain_until = now + request.kill_grace;
    }
    if (!stopped && !exited && now >= deadline) stop(SubprocessEnd::kTimedOut, now);
    if (stopped && !killed && !exited && now >= kill_at) {
      kill(-pid, SIGKILL);
      killed = true;
    }
  }

  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (stopped) {
    result.end = *stopped;
  } else if (WIFEXITED(status)) {
    result.end = SubprocessEnd::kExited;
    result.exit_code = WEXITSTATUS(status);
  } else {
    result.end = SubprocessEnd::kSignalled;
    result.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  }
  return result;
}

}  // namespace rma::worker
