// PARTIAL (docs/protocol.md §5.15, §6.7): the scheduler relays a running attempt's chunks, in order
// and at once, to the task's synchronous callers, and drops (counting, never answering) chunks of
// an attempt the session does not hold, chunks out of order, and chunks of asynchronous tasks. Fake
// clock, recorded output: no sockets.
#include <gtest/gtest.h>

#include "broker/scheduler_test_util.h"

namespace rma::broker::testing {
namespace {

using proto::Command;
using Refusal = Scheduler::Refusal;

class StreamTest : public SchedulerFixture {
 protected:
  // A synchronous call from "gw" with ref 3.
  void SubmitCall(uint32_t max_attempts) {
    proto::Submit call{3, "llm", "prompt"};
    call.mode = proto::SubmitMode::kSync;
    call.max_attempts = max_attempts;
    s().OnSubmit(now(), "gw", call);
  }
  // A synchronous call from "gw" with ref 3, and the TASK the worker "w" got for it.
  proto::TaskAssignment Call() {
    proto::Submit call{3, "llm", "prompt"};
    call.mode = proto::SubmitMode::kSync;
    s().OnSubmit(now(), "gw", call);
    auto tasks = Tasks("w");
    EXPECT_EQ(tasks.size(), 1u);
    return tasks.empty() ? proto::TaskAssignment{} : tasks[0];
  }
  void Chunk(const std::string& worker, const proto::TaskAssignment& t, uint32_t seq,
             std::string data, uint32_t attempt = 0) {
    proto::Partial p;
    p.task_id = t.task_id;
    p.attempt = attempt != 0 ? attempt : t.attempt;
    p.seq = seq;
    p.data = std::move(data);
    if (seq == 0) {
      p.http_status = 200;
      p.content_type = "text/event-stream";
      p.headers = {{"cache-control", "no-cache"}};
    }
    s().OnWorkerPartial(now(), Ident(worker), std::move(p));
  }
  std::vector<proto::CallPartial> Relayed(const std::string& client = "gw") {
    return out_.Take<proto::CallPartial>(out_.to_clients, client, Command::kCallPartial);
  }
};

TEST_F(StreamTest, ChunksReachTheCallerInOrderBeforeTheResult) {
  Register("w", GpuCaps(), {"llm"});
  proto::TaskAssignment t = Call();
  Chunk("w", t, 0, "data: a\n\n");
  Chunk("w", t, 1, "data: b\n\n");
  auto relayed = Relayed();
  ASSERT_EQ(relayed.size(), 2u);
  EXPECT_EQ(relayed[0].ref, 3u);
  EXPECT_EQ(relayed[0].task_id, t.task_id);
  EXPECT_EQ(relayed[0].seq, 0u);
  EXPECT_EQ(relayed[0].data, "data: a\n\n");
  EXPECT_EQ(relayed[0].http_status, 200u);
  EXPECT_EQ(relayed[0].content_type, "text/event-stream");
  EXPECT_EQ(relayed[0].headers.at("cache-control"), "no-cache");
  EXPECT_EQ(relayed[1].seq, 1u);
  EXPECT_EQ(relayed[1].data, "data: b\n\n");
  EXPECT_TRUE(out_.Take<proto::TaskInfo>(out_.to_clients, "gw", Command::kTaskInfo).empty())
      << "the stream is not the end";
  Result("w", t, proto::Outcome::kOk, "data: a\n\ndata: b\n\n");
  auto info = out_.Take<proto::TaskInfo>(out_.to_clients, "gw", Command::kTaskInfo);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].task.result, "data: a\n\ndata: b\n\n");
  // After the end, a late chunk goes nowhere.
  Chunk("w", t, 2, "late");
  EXPECT_TRUE(Relayed().empty());
  EXPECT_EQ(s().refusals(Refusal::kNotLeaseHolder), 1u);
}

TEST_F(StreamTest, AnAnnouncedCallIsAcceptedAtOnceAndItsCallerCanCancelIt) {
  Register("w", GpuCaps(), {"llm"});
  proto::Submit call{3, "llm", "prompt"};
  call.mode = proto::SubmitMode::kSync;
  call.announce = true;
  s().OnSubmit(now(), "gw", call);
  auto accepted = out_.Take<proto::Accepted>(out_.to_clients, "gw", Command::kAccepted);
  ASSERT_EQ(accepted.size(), 1u) << "an announced call says its task id before it ends";
  EXPECT_EQ(accepted[0].ref, 3u);
  auto tasks = Tasks("w");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(accepted[0].task_id, tasks[0].task_id);
  // The caller's own client went away: it cancels by id, and the worker is told to stop.
  ASSERT_TRUE(s().OnCancel(now(), "gw", proto::CancelTask{4, accepted[0].task_id}));
  auto stop = out_.Take<proto::CancelAttempt>(out_.to_workers, Ident("w"), Command::kCancel);
  ASSERT_EQ(stop.size(), 1u);
  EXPECT_EQ(stop[0].task_id, tasks[0].task_id);
}

TEST_F(StreamTest, ACallIsTriedElsewhereOnlyWhileNothingReachedItsCaller) {
  Register("a", GpuCaps(), {"llm"});
  SubmitCall(/*max_attempts=*/3);
  auto first = Tasks("a");
  ASSERT_EQ(first.size(), 1u);
  // Fails before its first byte: it runs again (after the retry back-off).
  Result("a", first[0], proto::Outcome::kError, "backend down");
  EXPECT_TRUE(out_.Take<proto::TaskInfo>(out_.to_clients, "gw", Command::kTaskInfo).empty())
      << "a call that failed before its answer started is tried again";
  AdvanceInSteps(Seconds(5));
  auto second = Tasks("a");
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].attempt, first[0].attempt + 1);
  // Fails after a chunk reached the caller: the call ends, it is not started again.
  Chunk("a", second[0], 0, "data: a\n\n");
  ASSERT_EQ(Relayed().size(), 1u);
  Result("a", second[0], proto::Outcome::kError, "backend broke off");
  auto info = out_.Take<proto::TaskInfo>(out_.to_clients, "gw", Command::kTaskInfo);
  ASSERT_EQ(info.size(), 1u) << "the call ends with its first streamed attempt's failure";
  EXPECT_EQ(info[0].task.status, proto::TaskStatus::kDead);
  AdvanceInSteps(Seconds(5));
  EXPECT_TRUE(Tasks("a").empty());
}

TEST_F(StreamTest, ACallThatFailsBeforeItsFirstByteGoesAtOnceToAnotherWorker) {
  // "gpu" outranks "cpu" (tier 1 before tier 2), so routing alone would ask it again.
  Register("gpu", GpuCaps(), {"llm"});
  Register("cpu", CpuCaps(), {"llm"});
  SubmitCall(/*max_attempts=*/3);
  auto first = Tasks("gpu");
  ASSERT_EQ(first.size(), 1u);
  Result("gpu", first[0], proto::Outcome::kError, "backend down");
  Advance(Ms(1));  // no back-off: the caller is waiting
  EXPECT_TRUE(Tasks("gpu").empty()) << "the provider that just failed was asked again";
  auto retried = Tasks("cpu");
  ASSERT_EQ(retried.size(), 1u) << "the call was not replaced at once by the other provider";
  Result("cpu", retried[0], proto::Outcome::kOk, "answer");
  auto info = out_.Take<proto::TaskInfo>(out_.to_clients, "gw", Command::kTaskInfo);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].task.status, proto::TaskStatus::kCompleted);
}

TEST_F(StreamTest, ACallWhoseOnlyProviderFailedIsAskedAgainAtOnce) {
  Register("gpu", GpuCaps(), {"llm"});
  SubmitCall(/*max_attempts=*/2);
  auto first = Tasks("gpu");
  ASSERT_EQ(first.size(), 1u);
  Result("gpu", first[0], proto::Outcome::kError, "a hiccup");
  Advance(Ms(1));
  EXPECT_EQ(Tasks("gpu").size(), 1u) << "avoiding a worker must not leave a call without one";
}

TEST_F(StreamTest, ACallWhoseWorkerIsLostMidStreamEndsInsteadOfStartingAgain) {
  Register("a", GpuCaps(), {"llm"});
  Register("b", GpuCaps(), {"llm"});
  SubmitCall(/*max_attempts=*/3);
  auto on_a = Tasks("a");
  auto on_b = Tasks("b");
  ASSERT_EQ(on_a.size() + on_b.size(), 1u);
  const std::string holder = on_a.empty() ? "b" : "a";
  const std::string other = on_a.empty() ? "a" : "b";
  const proto::TaskAssignment t = on_a.empty() ? on_b[0] : on_a[0];
  Chunk(holder, t, 0, "data: a\n\n");
  ASSERT_EQ(Relayed().size(), 1u);
  s().OnWorkerDisconnect(now(), Ident(holder), proto::Disconnect{"bye", false});
  auto info = out_.Take<proto::TaskInfo>(out_.to_clients, "gw", Command::kTaskInfo);
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].task.error_code, "worker_lost");
  EXPECT_TRUE(Tasks(other).empty()) << "the call restarted on another worker mid-stream";
}

TEST_F(StreamTest, AWatcherHearsEveryChangeAndTheOutputOfAnAsynchronousTask) {
  proto::Submit task{1, "llm", "prompt"};
  s().OnSubmit(now(), "client", task);
  auto accepted = out_.Take<proto::Accepted>(out_.to_clients, "client", Command::kAccepted);
  ASSERT_EQ(accepted.size(), 1u);
  proto::Get watch;
  watch.ref = 7;
  watch.task_id = accepted[0].task_id;
  watch.wait_ms = 60000;
  watch.watch = true;
  ASSERT_TRUE(s().OnGet(now(), "gw", watch));
  auto infos = [&] {
    return out_.Take<proto::TaskInfo>(out_.to_clients, "gw", Command::kTaskInfo);
  };
  auto now_info = infos();
  ASSERT_EQ(now_info.size(), 1u) << "the task as it stands, at once";
  EXPECT_EQ(now_info[0].task.status, proto::TaskStatus::kQueued);
  Register("w", GpuCaps(), {"llm"});
  auto tasks = Tasks("w");
  ASSERT_EQ(tasks.size(), 1u);
  auto running = infos();
  ASSERT_EQ(running.size(), 1u);
  EXPECT_EQ(running[0].ref, 7u);
  EXPECT_EQ(running[0].task.status, proto::TaskStatus::kRunning);
  proto::Progress p;
  p.task_id = tasks[0].task_id;
  p.attempt = tasks[0].attempt;
  p.fraction = 0.5;
  p.message = "half";
  s().OnWorkerProgress(now(), Ident("w"), p);
  auto progress = infos();
  ASSERT_EQ(progress.size(), 1u);
  EXPECT_DOUBLE_EQ(progress[0].task.progress, 0.5);
  EXPECT_EQ(progress[0].task.progress_message, "half");
  Chunk("w", tasks[0], 0, "data: a\n\n");
  auto relayed = Relayed("gw");
  ASSERT_EQ(relayed.size(), 1u) << "a watcher gets an asynchronous task's output";
  EXPECT_EQ(relayed[0].ref, 7u);
  Result("w", tasks[0], proto::Outcome::kOk, "data: a\n\n");
  auto end = infos();
  ASSERT_EQ(end.size(), 1u);
  EXPECT_EQ(end[0].task.status, proto::TaskStatus::kCompleted);
  // The end is the last: nothing more for the watcher.
  Chunk("w", tasks[0], 1, "late");
  EXPECT_TRUE(Relayed("gw").empty());
}

TEST_F(StreamTest, AnUnannouncedCallSaysNothingBeforeItEnds) {
  Register("w", GpuCaps(), {"llm"});
  Call();
  EXPECT_TRUE(out_.Take<proto::Accepted>(out_.to_clients, "gw", Command::kAccepted).empty());
}

TEST_F(StreamTest, ChunksOutOfOrderAreDroppedAndCountedWithoutAnAnswer) {
  Register("w", GpuCaps(), {"llm"});
  proto::TaskAssignment t = Call();
  Chunk("w", t, 1, "skipped ahead");
  EXPECT_TRUE(Relayed().empty());
  EXPECT_EQ(s().refusals(Refusal::kStreamOutOfOrder), 1u);
  Chunk("w", t, 0, "first");
  Chunk("w", t, 0, "first again");
  auto relayed = Relayed();
  ASSERT_EQ(relayed.size(), 1u);
  EXPECT_EQ(relayed[0].data, "first");
  EXPECT_EQ(s().refusals(Refusal::kStreamOutOfOrder), 2u);
  EXPECT_TRUE(out_.Take<proto::Error>(out_.to_workers, Ident("w"), Command::kError).empty())
      << "no ERROR per chunk";
}

TEST_F(StreamTest, OnlyTheLeaseHolderStreams) {
  Register("w", GpuCaps(), {"llm"});
  Register("other", GpuCaps(), {"ocr"});  // registered, but never given the task
  proto::TaskAssignment t = Call();
  Chunk("other", t, 0, "forged");
  Chunk("w", t, 0, "wrong attempt", t.attempt + 1);
  EXPECT_TRUE(Relayed().empty());
  EXPECT_EQ(s().refusals(Refusal::kNotLeaseHolder), 2u);
  EXPECT_TRUE(out_.Take<proto::Error>(out_.to_workers, Ident("other"), Command::kError).empty());
  // An unregistered session is told to register, as for PROGRESS.
  proto::Partial p;
  p.task_id = t.task_id;
  p.attempt = t.attempt;
  s().OnWorkerPartial(now(), "stranger", p);
  EXPECT_EQ(s().refusals(Refusal::kUnregistered), 1u);
  EXPECT_TRUE(Relayed().empty());
}

TEST_F(StreamTest, AsynchronousTasksKeepNoPartialOutput) {
  Register("w", GpuCaps(), {"llm"});
  Submit("llm");
  auto tasks = Tasks("w");
  ASSERT_EQ(tasks.size(), 1u);
  Chunk("w", tasks[0], 0, "nobody waits");
  EXPECT_TRUE(out_.to_clients.empty());
  // The chunk was in order: the next one is accepted too (and dropped the same way).
  Chunk("w", tasks[0], 1, "still nobody");
  EXPECT_EQ(s().refusals(Refusal::kStreamOutOfOrder), 0u);
  EXPECT_TRUE(out_.to_clients.empty());
}

TEST_F(StreamTest, ANewAttemptStartsItsStreamAtZero) {
  // An asynchronous task is retried after its chunks (nobody saw them): the new attempt's stream
  // starts again at seq 0.
  Register("w", GpuCaps(), {"llm"});
  proto::Submit task{3, "llm", "prompt"};
  task.max_attempts = 2;
  s().OnSubmit(now(), "gw", task);
  auto first = Tasks("w");
  ASSERT_EQ(first.size(), 1u);
  Chunk("w", first[0], 0, "a");
  Chunk("w", first[0], 1, "b");
  Result("w", first[0], proto::Outcome::kError, "", /*retryable=*/true);
  AdvanceInSteps(Seconds(5));
  auto second = Tasks("w");
  ASSERT_EQ(second.size(), 1u);
  ASSERT_NE(second[0].attempt, first[0].attempt);
  Chunk("w", second[0], 0, "again");
  Chunk("w", second[0], 1, "and on");
  EXPECT_EQ(s().refusals(Refusal::kStreamOutOfOrder), 0u);
}

}  // namespace
}  // namespace rma::broker::testing
