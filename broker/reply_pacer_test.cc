// ReplyPacer with a fake clock and real counters: small replies pass; large ones pass while their
// client's window (and the total window) has room, then wait in order until ZeroMQ lets earlier
// ones go; past the waiting budgets they are refused. "ZeroMQ holds a reply" is an OutMessage with
// the counted body kept alive here; "written out" is dropping it.
#include "broker/reply_pacer.h"

#include <gtest/gtest.h>

#include <list>

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
    o.window_bytes = 16 * kMiB;
    o.total_window_bytes = 24 * kMiB;
    o.max_deferred_bytes = 32 * kMiB;
    o.max_deferred_total_bytes = 48 * kMiB;
    o.recheck = Ms(5);
    return o;
  }

  // What the broker loop does with a reply the pacer lets go: encode it into a counted body and
  // hand it to "ZeroMQ" (held here until Written).
  void Send(const std::string& client, const proto::ToClientMessage& m,
            std::shared_ptr<proto::InFlightBytes> in_flight) {
    proto::OutMessage out(proto::Command::kTaskInfo);
    out.AddBody(std::string(ReplyPacer::PacedBytes(m), 'x'), std::move(in_flight));
    held_[client].push_back(std::move(out));
  }
  ReplyPacer::Verdict Offer(ReplyPacer& pacer, const std::string& client, uint64_t ref,
                            size_t bytes, Time at) {
    proto::ToClientMessage m = Info(ref, bytes);
    std::shared_ptr<proto::InFlightBytes> in_flight;
    ReplyPacer::Verdict v = pacer.Offer(at, client, m, &in_flight);
    if (v == ReplyPacer::Verdict::kSendNow) {
      if (pacer.Applies(m)) {
        EXPECT_TRUE(in_flight) << "a paced reply must come with its counter";
      }
      Send(client, m, in_flight);
    }
    return v;
  }
  // ZeroMQ writes out the oldest `n` replies held for `client`.
  void Written(const std::string& client, size_t n) {
    auto& q = held_[client];
    for (size_t i = 0; i < n && !q.empty(); ++i) q.pop_front();
  }
  std::vector<uint64_t> TakeDue(ReplyPacer& pacer, Time at) {
    std::vector<ReplyPacer::Due> due;
    pacer.TakeDue(at, &due);
    std::vector<uint64_t> refs;
    for (ReplyPacer::Due& d : due) {
      refs.push_back(RefOf(d.message));
      Send(d.client, d.message, d.in_flight);
    }
    return refs;
  }

  Time t0 = FromUnixMs(1'800'000'000'000);
  std::map<std::string, std::list<proto::OutMessage>> held_;
};

TEST_F(ReplyPacerTest, SmallRepliesAndOtherMessagesAreNeverHeld) {
  ReplyPacer pacer(Options());
  for (uint64_t i = 0; i < 1000; ++i) {
    EXPECT_EQ(Offer(pacer, "gw", i, kMiB - 1, t0), ReplyPacer::Verdict::kSendNow);
  }
  proto::ToClientMessage accepted = proto::Accepted{};
  EXPECT_FALSE(pacer.Applies(accepted));
  EXPECT_EQ(pacer.NextDue(), Time::max());
  EXPECT_EQ(pacer.in_flight_bytes(), 0);
}

TEST_F(ReplyPacerTest, LargeRepliesBeyondTheWindowWaitInOrderUntilEarlierOnesAreWritten) {
  ReplyPacer pacer(Options());
  // A 16 MiB window: four 4 MiB replies go at once, the next four wait.
  for (uint64_t ref = 1; ref <= 8; ++ref) {
    EXPECT_EQ(Offer(pacer, "gw", ref, 4 * kMiB, t0),
              ref <= 4 ? ReplyPacer::Verdict::kSendNow : ReplyPacer::Verdict::kDeferred)
        << ref;
  }
  EXPECT_EQ(pacer.deferred_bytes(), 16 * kMiB);
  EXPECT_GE(pacer.in_flight_bytes(), static_cast<int64_t>(16 * kMiB));
  EXPECT_EQ(pacer.NextDue(), t0 + Ms(5));

  // Nothing written yet: however long it waits, nothing more goes.
  EXPECT_TRUE(TakeDue(pacer, t0 + Seconds(60)).empty());
  // One written out: exactly one more goes, in order.
  Written("gw", 1);
  EXPECT_EQ(TakeDue(pacer, t0 + Seconds(61)), std::vector<uint64_t>{5});
  // All written: the rest go in one call, never more than the window.
  Written("gw", 4);
  EXPECT_EQ(TakeDue(pacer, t0 + Seconds(62)), (std::vector<uint64_t>{6, 7, 8}));
  EXPECT_EQ(pacer.deferred_bytes(), 0u);
  Written("gw", 4);
  EXPECT_EQ(pacer.in_flight_bytes(), 0);
  // Nothing waits and nothing is in flight: the client is forgotten.
  EXPECT_TRUE(TakeDue(pacer, t0 + Seconds(63)).empty());
  EXPECT_EQ(pacer.NextDue(), Time::max());
}

TEST_F(ReplyPacerTest, OneCallReleasesNoMoreThanTheWindow) {
  ReplyPacer pacer(Options());
  for (uint64_t ref = 1; ref <= 8; ++ref) Offer(pacer, "gw", ref, 4 * kMiB, t0);
  Written("gw", 4);
  // 16 MiB free and four 4 MiB replies waiting: all four, and the window is full again.
  EXPECT_EQ(TakeDue(pacer, t0 + Ms(5)), (std::vector<uint64_t>{5, 6, 7, 8}));
  EXPECT_EQ(Offer(pacer, "gw", 9, 4 * kMiB, t0 + Ms(6)), ReplyPacer::Verdict::kDeferred);
}

TEST_F(ReplyPacerTest, TheTotalWindowBoundsAllClientsTogether) {
  ReplyPacer pacer(Options());
  // Two clients, each within its own 16 MiB window; together they stop at 24 MiB.
  EXPECT_EQ(Offer(pacer, "a", 1, 8 * kMiB, t0), ReplyPacer::Verdict::kSendNow);
  EXPECT_EQ(Offer(pacer, "b", 2, 8 * kMiB, t0), ReplyPacer::Verdict::kSendNow);
  EXPECT_EQ(Offer(pacer, "a", 3, 8 * kMiB, t0), ReplyPacer::Verdict::kSendNow);
  EXPECT_EQ(Offer(pacer, "b", 4, 8 * kMiB, t0), ReplyPacer::Verdict::kDeferred);
  Written("a", 1);
  EXPECT_EQ(TakeDue(pacer, t0 + Ms(5)), std::vector<uint64_t>{4});
}

TEST_F(ReplyPacerTest, PastTheWaitingBudgetLargeRepliesAreRefused) {
  ReplyPacer pacer(Options());
  size_t sent = 0, deferred = 0, refused = 0;
  for (uint64_t ref = 1; ref <= 150; ++ref) {  // 150 reads of an 8 MiB result, never read
    switch (Offer(pacer, "attacker", ref, 8 * kMiB, t0)) {
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
  EXPECT_EQ(sent, 2u);      // 16 MiB window
  EXPECT_EQ(deferred, 4u);  // 32 MiB waiting
  EXPECT_EQ(refused, 144u);
  EXPECT_EQ(pacer.refused(), 144u);
  // The same again a minute later: the client read nothing, so nothing more is held for it.
  for (uint64_t ref = 151; ref <= 300; ++ref)
    Offer(pacer, "attacker", ref, 8 * kMiB, t0 + Seconds(60));
  EXPECT_TRUE(TakeDue(pacer, t0 + Seconds(61)).empty());
  EXPECT_EQ(pacer.in_flight_bytes(), static_cast<int64_t>(16 * kMiB));
  EXPECT_EQ(pacer.deferred_bytes(), 32 * kMiB);
  EXPECT_EQ(pacer.refused(), 294u);

  // Another client's waiting budget is its own, within the total (48 MiB): 16 MiB more.
  EXPECT_EQ(Offer(pacer, "other", 1000, 8 * kMiB, t0 + Seconds(62)),
            ReplyPacer::Verdict::kSendNow);  // total window 24 MiB
  EXPECT_EQ(Offer(pacer, "other", 1001, 8 * kMiB, t0 + Seconds(62)),
            ReplyPacer::Verdict::kDeferred);
  EXPECT_EQ(Offer(pacer, "other", 1002, 8 * kMiB, t0 + Seconds(62)),
            ReplyPacer::Verdict::kDeferred);
  EXPECT_EQ(Offer(pacer, "other", 1003, 8 * kMiB, t0 + Seconds(62)), ReplyPacer::Verdict::kRefused);
}

TEST_F(ReplyPacerTest, AReplyLargerThanTheWindowStillLeavesWhenTheWindowIsEmpty) {
  ReplyPacer pacer(Options());
  EXPECT_EQ(Offer(pacer, "gw", 1, 20 * kMiB, t0), ReplyPacer::Verdict::kSendNow);
  EXPECT_EQ(Offer(pacer, "gw", 2, 20 * kMiB, t0), ReplyPacer::Verdict::kDeferred);
  EXPECT_TRUE(TakeDue(pacer, t0 + Ms(5)).empty());
  Written("gw", 1);
  EXPECT_EQ(TakeDue(pacer, t0 + Ms(10)), std::vector<uint64_t>{2});
}

}  // namespace
}  // namespace rma::broker
