// SUBMIT with wait_ms (docs/protocol.md §6.1): ACCEPTED, and TASK_INFO when the task ends (at once,
// even before the ACCEPTED has left) or when the wait passes (then ordered behind the ACCEPTED: it
// carries the ACCEPTED's token), within the waiter budgets. Fake clock, recorded output: no
// sockets.
#include <gtest/gtest.h>

#include "broker/scheduler_test_util.h"

namespace rma::broker::testing {
namespace {

using proto::Command;
using proto::TaskStatus;

class SubmitWaitTest : public SchedulerFixture {
 protected:
  SubmitWaitTest() { durable_ = true; }

  // Submits with wait_ms and returns the ACCEPTED's token (what the TASK_INFO must follow).
  uint64_t SubmitWaiting(uint64_t ref, uint32_t wait_ms, std::string key = {}) {
    proto::Submit sub;
    sub.ref = ref;
    sub.service = "echo";
    sub.payload = "hello";
    sub.wait_ms = wait_ms;
    sub.idempotency_key = std::move(key);
    s().OnSubmit(now(), "c", sub);
    return out_.durable_tokens;
  }
  // The client's messages since the last call, in order.
  std::vector<Sent> Drain() { return std::exchange(out_.to_clients, {}); }
};

TEST_F(SubmitWaitTest, AnswersWithTheEndAsSoonAsItComes) {
  Register("w", CpuCaps(), {"echo"});
  const uint64_t token = SubmitWaiting(7, 5000);
  auto tasks = Tasks("w");
  ASSERT_EQ(tasks.size(), 1u);
  Result("w", tasks[0], proto::Outcome::kOk, "hello");
  std::vector<Sent> sent = Drain();
  ASSERT_EQ(sent.size(), 2u);
  const auto* acc = sent[0].As<proto::Accepted>();
  ASSERT_NE(acc, nullptr);
  EXPECT_TRUE(sent[0].durable);
  EXPECT_EQ(acc->ref, 7u);
  const auto* info = sent[1].As<proto::TaskInfo>();
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->ref, 7u);
  EXPECT_EQ(info->task.task_id, acc->task_id);
  EXPECT_EQ(info->task.status, TaskStatus::kCompleted);
  EXPECT_EQ(info->task.result, "hello");
  // Not held behind the ACCEPTED's commit: the caller has its answer.
  EXPECT_EQ(sent[1].after, 0u);
  EXPECT_NE(token, 0u);
}

TEST_F(SubmitWaitTest, WithoutWaitThereIsOneAnswer) {
  Register("w", CpuCaps(), {"echo"});
  SubmitWaiting(1, 0);
  auto tasks = Tasks("w");
  ASSERT_EQ(tasks.size(), 1u);
  Result("w", tasks[0]);
  std::vector<Sent> sent = Drain();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].command(), Command::kAccepted);
}

TEST_F(SubmitWaitTest, TheWaitPassingAnswersWithTheTaskAsItStands) {
  const uint64_t token = SubmitWaiting(3, 2000);  // no worker: it stays queued
  Drain();
  AdvanceInSteps(Ms(1900));
  EXPECT_TRUE(Drain().empty());
  AdvanceInSteps(Ms(300));
  std::vector<Sent> sent = Drain();
  ASSERT_EQ(sent.size(), 1u);
  const auto* info = sent[0].As<proto::TaskInfo>();
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->ref, 3u);
  EXPECT_EQ(info->task.status, TaskStatus::kQueued);
  EXPECT_EQ(sent[0].after, token);
  // The task is still there, and ends normally once a worker comes.
  Register("w", CpuCaps(), {"echo"});
  EXPECT_EQ(Tasks("w").size(), 1u);
}

TEST_F(SubmitWaitTest, TheWaitIsCappedByTheBroker) {
  config_.max_wait = Seconds(1);
  SubmitWaiting(3, 600000);
  Drain();
  AdvanceInSteps(Ms(1200));
  std::vector<Sent> sent = Drain();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].command(), Command::kTaskInfo);
}

TEST_F(SubmitWaitTest, ADuplicateOfAnEndedTaskAnswersAtOnce) {
  Register("w", CpuCaps(), {"echo"});
  SubmitWaiting(1, 0, "k");
  auto tasks = Tasks("w");
  ASSERT_EQ(tasks.size(), 1u);
  Result("w", tasks[0], proto::Outcome::kOk, "first");
  Drain();
  const uint64_t token = SubmitWaiting(2, 5000, "k");
  std::vector<Sent> sent = Drain();
  ASSERT_EQ(sent.size(), 2u);
  const auto* acc = sent[0].As<proto::Accepted>();
  ASSERT_NE(acc, nullptr);
  EXPECT_TRUE(acc->duplicate);
  const auto* info = sent[1].As<proto::TaskInfo>();
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->ref, 2u);
  EXPECT_EQ(info->task.result, "first");
  EXPECT_EQ(sent[1].after, 0u) << "an ended task is answered at once";
  EXPECT_NE(token, 0u);
}

TEST_F(SubmitWaitTest, ASpentClientBudgetRefusesTheSubmission) {
  config_.max_waiters_per_client = 1;
  SubmitWaiting(1, 5000);
  Drain();
  SubmitWaiting(2, 5000);
  std::vector<Sent> sent = Drain();
  ASSERT_EQ(sent.size(), 1u);
  const auto* e = sent[0].As<proto::Error>();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->ref, 2u);
  EXPECT_EQ(e->code, "resource_exhausted");
  EXPECT_EQ(s().unfinished_tasks(), 1u) << "nothing was accepted for the refused one";
  // Without a wait the same client is still served.
  SubmitWaiting(3, 0);
  sent = Drain();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].command(), Command::kAccepted);
}

TEST_F(SubmitWaitTest, ASpentTaskBudgetStillAcceptsTheDuplicate) {
  config_.max_waiters_per_task = 1;
  SubmitWaiting(1, 5000, "k");
  Drain();
  const uint64_t token = SubmitWaiting(2, 5000, "k");
  std::vector<Sent> sent = Drain();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].command(), Command::kAccepted);
  const auto* e = sent[1].As<proto::Error>();
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->code, "resource_exhausted");
  EXPECT_EQ(sent[1].after, token);
}

}  // namespace
}  // namespace rma::broker::testing
