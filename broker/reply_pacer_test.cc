// ReplyPacer with a fake clock: small replies pass, large ones pass within the burst, then wait in
// order and come out at the configured rate, and past the waiting budget they are refused.
#include "broker/reply_pacer.h"

#include <gtest/gtest.h>

namespace rma::broker {
namespace {

constexpr size_t kMiB = 1u << 20;

proto::ToClientMessage Info(uint64_t ref, size_t result_bytes) {
  proto::TaskInfo info;
  info.ref = ref;
  info.task.result = Bytes(std::string(result_bytes, 'r'));
  return info;
}

uint64_t RefOf(const proto::ToClientMessage& m) { return std::get<proto::TaskInfo>(m).ref; }

class ReplyPacerTest : public ::testing::Test {
 protected:
  ReplyPacerOptions Options() {
    ReplyPacerOptions o;
    o.large_bytes = kMiB;
    o.burst_bytes = 16 * kMiB;
    o.bytes_per_s = 8.0 * kMiB;
    o.max_deferred_bytes = 32 * kMiB;
    return o;
  }
  Time t0 = FromUnixMs(1'800'000'000'000);
};

TEST_F(ReplyPacerTest, SmallRepliesAndOtherMessagesAreNeverHeld) {
  ReplyPacer pacer(Options());
  for (int i = 0; i < 1000; ++i) {
    proto::ToClientMessage small = Info(i, kMiB - 1);
    EXPECT_EQ(pacer.Offer(t0, "gw", small), ReplyPacer::Verdict::kSendNow);
  }
  proto::ToClientMessage accepted = proto::Accepted{};
  EXPECT_FALSE(pacer.Applies(accepted));
  EXPECT_EQ(pacer.NextDue(), Time::max());
}

TEST_F(ReplyPacerTest, LargeRepliesBeyondTheBurstWaitInOrderAndLeaveAtTheRate) {
  ReplyPacer pacer(Options());
  // 16 MiB of burst: four 4 MiB replies go at once, the next four wait.
  for (uint64_t ref = 1; ref <= 8; ++ref) {
    proto::ToClientMessage m = Info(ref, 4 * kMiB);
    EXPECT_EQ(pacer.Offer(t0, "gw", m),
              ref <= 4 ? ReplyPacer::Verdict::kSendNow : ReplyPacer::Verdict::kDeferred)
        << ref;
  }
  EXPECT_EQ(pacer.deferred_bytes(), 16 * kMiB);
  // Another client has its own bucket.
  proto::ToClientMessage other = Info(100, 4 * kMiB);
  EXPECT_EQ(pacer.Offer(t0, "gw-2", other), ReplyPacer::Verdict::kSendNow);

  // At 8 MiB/s a 4 MiB reply is due every half second.
  EXPECT_EQ(pacer.NextDue(), t0 + Ms(500));
  std::vector<std::pair<std::string, proto::ToClientMessage>> due;
  pacer.TakeDue(t0 + Ms(499), &due);
  EXPECT_TRUE(due.empty());
  pacer.TakeDue(t0 + Ms(500), &due);
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].first, "gw");
  EXPECT_EQ(RefOf(due[0].second), 5u);
  due.clear();
  pacer.TakeDue(t0 + Seconds(2), &due);
  ASSERT_EQ(due.size(), 3u);
  EXPECT_EQ(RefOf(due[0].second), 6u);
  EXPECT_EQ(RefOf(due[2].second), 8u);
  EXPECT_EQ(pacer.deferred_bytes(), 0u);
  EXPECT_EQ(pacer.NextDue(), Time::max());
}

TEST_F(ReplyPacerTest, PastTheWaitingBudgetLargeRepliesAreRefused) {
  ReplyPacer pacer(Options());
  size_t sent = 0, deferred = 0, refused = 0;
  for (uint64_t ref = 1; ref <= 150; ++ref) {  // 150 reads of an 8 MiB result
    proto::ToClientMessage m = Info(ref, 8 * kMiB);
    switch (pacer.Offer(t0, "gw", m)) {
      case ReplyPacer::Verdict::kSendNow:
        ++sent;
        break;
      case ReplyPacer::Verdict::kDeferred:
        ++deferred;
        break;
      case ReplyPacer::Verdict::kRefused:
        ++refused;
        break;
    }
  }
  EXPECT_EQ(sent, 2u);      // 16 MiB burst
  EXPECT_EQ(deferred, 4u);  // 32 MiB waiting
  EXPECT_EQ(refused, 144u);
  EXPECT_EQ(pacer.refused(), 144u);
}

TEST_F(ReplyPacerTest, AReplyLargerThanTheBurstStillLeavesWhenTheBucketIsFull) {
  ReplyPacer pacer(Options());
  proto::ToClientMessage huge = Info(1, 20 * kMiB);
  EXPECT_EQ(pacer.Offer(t0, "gw", huge), ReplyPacer::Verdict::kSendNow);
  proto::ToClientMessage next = Info(2, 20 * kMiB);
  EXPECT_EQ(pacer.Offer(t0, "gw", next), ReplyPacer::Verdict::kDeferred);
  std::vector<std::pair<std::string, proto::ToClientMessage>> due;
  pacer.TakeDue(t0 + Seconds(2), &due);  // 16 MiB refilled at 8 MiB/s
  EXPECT_EQ(due.size(), 1u);
}

}  // namespace
}  // namespace rma::broker
