// RunSubprocess with real child processes: input and output, exit codes and stderr, the output
// bound, timeouts and cancellation killing the whole process group (grandchildren included, SIGKILL
// for commands that ignore SIGTERM), and no zombie or leaked descriptor left behind.
#include "worker/subprocess.h"

#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace rma::worker {
namespace {

using ::testing::HasSubstr;

SubprocessRequest Shell(const std::string& command) {
  SubprocessRequest r;
  r.argv = {"/bin/sh", "-c", command};
  r.timeout = Seconds(60);
  r.kill_grace = Ms(200);
  return r;
}

// Whether `pid` is gone or a zombie that is not ours to reap (reparented to init).
bool Gone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string line;
  std::getline(stat, line);
  size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

bool WaitGone(pid_t pid) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Gone(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

size_t OpenDescriptors() {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++n;
  }
  return n;
}

TEST(SubprocessTest, PassesInputToStdinAndReturnsStdout) {
  SubprocessRequest r = Shell("tr a-z A-Z");
  r.input = "hello worker";
  auto out = RunSubprocess(r);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->end, SubprocessEnd::kExited);
  EXPECT_EQ(out->exit_code, 0);
  EXPECT_EQ(out->output, "HELLO WORKER");
}

TEST(SubprocessTest, MovesMegabytesBothWaysWithoutDeadlock) {
  SubprocessRequest r = Shell("cat");
  r.input = std::string(3 << 20, 'z');
  auto out = RunSubprocess(r);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->output.size(), r.input.size());
  EXPECT_EQ(out->output, r.input);
}

TEST(SubprocessTest, ReportsTheExitCodeAndTheEndOfStderr) {
  SubprocessRequest r = Shell(
      "echo first >&2; i=0; while [ $i -lt 200 ]; do echo line$i >&2; "
      "i=$((i+1)); done; echo boom >&2; exit 3");
  r.error_tail_bytes = 64;
  auto out = RunSubprocess(r);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->end, SubprocessEnd::kExited);
  EXPECT_EQ(out->exit_code, 3);
  EXPECT_LE(out->error_tail.size(), 64u);
  EXPECT_THAT(out->error_tail, HasSubstr("boom"));
  EXPECT_THAT(out->error_tail, ::testing::Not(HasSubstr("first")));
}

TEST(SubprocessTest, ACommandThatIgnoresItsInputIsFine) {
  SubprocessRequest r = Shell("echo done");
  r.input = std::string(8 << 20, 'x');  // more than a pipe holds: the write fails with EPIPE
  auto out = RunSubprocess(r);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->end, SubprocessEnd::kExited);
  EXPECT_EQ(out->output, "done\n");
}

TEST(SubprocessTest, TooMuchOutputKillsTheCommand) {
  SubprocessRequest r = Shell("yes");
  r.max_output_bytes = 100000;
  auto out = RunSubprocess(r);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->end, SubprocessEnd::kOutputTooLarge);
  EXPECT_EQ(out->output.size(), 100000u);
  EXPECT_TRUE(WaitGone(out->pid));
}

TEST(SubprocessTest, ATimeoutKillsTheWholeProcessGroup) {
  std::string pidfile =
      std::filesystem::temp_directory_path() / ("rma-grandchild-" + std::to_string(getpid()));
  SubprocessRequest r = Shell("sleep 300 & echo $! > " + pidfile + "; wait");
  r.timeout = Ms(300);
  auto out = RunSubprocess(r);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->end, SubprocessEnd::kTimedOut);
  std::ifstream in(pidfile);
  pid_t grandchild = 0;
  ASSERT_TRUE(in >> grandchild);
  std::filesystem::remove(pidfile);
  EXPECT_TRUE(WaitGone(grandchild)) << "the background sleep survived";
  EXPECT_TRUE(Gone(out->pid));
}

TEST(SubprocessTest, ACommandIgnoringSigtermIsKilledAfterTheGrace) {
  SubprocessRequest r = Shell("trap '' TERM; echo ready; while :; do sleep 0.05; done");
  r.timeout = Ms(200);
  r.kill_grace = Ms(100);
  auto out = RunSubprocess(r);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->end, SubprocessEnd::kTimedOut);
  EXPECT_EQ(out->output, "ready\n");
  EXPECT_TRUE(Gone(out->pid));
}

TEST(SubprocessTest, CancellationFromAnotherThreadStopsItAtOnce) {
  CancelToken cancel;
  std::string marker =
      std::filesystem::temp_directory_path() / ("rma-started-" + std::to_string(getpid()));
  SubprocessRequest r = Shell("touch " + marker + "; exec sleep 300");
  std::thread canceller([&] {
    // Cancel once the command surely runs (a cancel before the start is another test).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!std::filesystem::exists(marker) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    cancel.Cancel("test");
  });
  auto start = std::chrono::steady_clock::now();
  auto out = RunSubprocess(r, &cancel);
  canceller.join();
  std::filesystem::remove(marker);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->end, SubprocessEnd::kCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  EXPECT_TRUE(Gone(out->pid));
}

TEST(SubprocessTest, AlreadyCancelledNeverRunsLong) {
  CancelToken cancel;
  cancel.Cancel("before start");
  auto out = RunSubprocess(Shell("exec sleep 300"), &cancel);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->end, SubprocessEnd::kCancelled);
}

TEST(SubprocessTest, WhatTheCommandLeftRunningIsKilledWhenItExits) {
  std::string pidfile =
      std::filesystem::temp_directory_path() / ("rma-straggler-" + std::to_string(getpid()));
  SubprocessRequest r = Shell("sleep 300 >/dev/null 2>&1 & echo $! > " + pidfile + "; echo bye");
  auto out = RunSubprocess(r);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->end, SubprocessEnd::kExited);
  EXPECT_EQ(out->output, "bye\n");
  std::ifstream in(pidfile);
  pid_t straggler = 0;
  ASSERT_TRUE(in >> straggler);
  std::filesystem::remove(pidfile);
  EXPECT_TRUE(WaitGone(straggler));
}

TEST(SubprocessTest, ReportsASignalNobodyHereSent) {
  auto out = RunSubprocess(Shell("kill -SEGV $$"));
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(out->end, SubprocessEnd::kSignalled);
  EXPECT_EQ(out->signal, SIGSEGV);
}

TEST(SubprocessTest, StartsWithDefaultSignalsTheExtraEnvironmentAndItsOwnGroup) {
  // The test thread blocks SIGTERM the way the worker's threads do: the child must not inherit it.
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &term, &old);
  SubprocessRequest r = Shell(
      "grep SigBlk /proc/self/status; echo \"$RMA_TEST_VALUE\"; cut -d' ' -f5 /proc/$$/stat; "
      "echo $$");
  r.env = {"RMA_TEST_VALUE=from the worker", "PATH=/usr/bin:/bin"};
  auto out = RunSubprocess(r);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(out.ok());
  std::istringstream lines(out->output);
  std::string blocked, value, pgid, pid;
  std::getline(lines, blocked);
  std::getline(lines, value);
  std::getline(lines, pgid);
  std::getline(lines, pid);
  EXPECT_EQ(blocked, "SigBlk:\t0000000000000000");
  EXPECT_EQ(value, "from the worker");
  EXPECT_EQ(pgid, pid) << "the command leads its own process group";
}

TEST(SubprocessTest, LeavesNoZombieAndNoDescriptorBehind) {
  size_t before = OpenDescriptors();
  for (int i = 0; i < 20; ++i) {
    auto out = RunSubprocess(Shell("echo $$; ls /proc/self/fd | wc -l"));
    ASSERT_TRUE(out.ok());
    std::istringstream lines(out->output);
    pid_t pid = 0;
    int child_fds = 0;
    lines >> pid >> child_fds;
    EXPECT_TRUE(Gone(pid)) << "child " << pid << " was not reaped";
    // stdin, stdout, stderr and the directory ls reads: nothing inherited from the worker.
    EXPECT_LE(child_fds, 4);
  }
  EXPECT_EQ(OpenDescriptors(), before);
}

TEST(SubprocessTest, AMissingProgramIsUnavailable) {
  SubprocessRequest r;
  r.argv = {"/nonexistent/program"};
  EXPECT_EQ(RunSubprocess(r).status().code(), StatusCode::kUnavailable);
  r.argv = {};
  EXPECT_EQ(RunSubprocess(r).status().code(), StatusCode::kInvalidArgument);
}

TEST(PrintableTailTest, KeepsTheEndAndReplacesWhatCannotBePrinted) {
  EXPECT_EQ(PrintableTail("  hello\n", 100), "hello");
  EXPECT_EQ(PrintableTail("abcdef", 3), "def");
  EXPECT_EQ(PrintableTail("a\x01"
                          "b\xff",
                          10),
            "a?b?");
  EXPECT_EQ(PrintableTail("caf\xc3\xa9", 10), "caf\xc3\xa9");
  // Cut inside a two-byte character: the dangling continuation byte is dropped, not garbled.
  EXPECT_EQ(PrintableTail("\xc3\xa9t\xc3\xa9", 4), "t\xc3\xa9");
  EXPECT_EQ(PrintableTail("", 10), "");
}

}  // namespace
}  // namespace rma::worker
