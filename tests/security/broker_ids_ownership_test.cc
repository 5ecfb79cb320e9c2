// Security tests (issue 12), attacks 6 and 9: guessing task ids, and reaching another account's
// tasks on the client protocol. Task ids must carry enough randomness that knowing one's own ids
// says nothing about anybody else's; a task belongs to the owner that submitted it (GET,
// CANCEL_TASK, LIST and idempotency keys are scoped to it) and only admins see all. Real
// rma-broker process, raw ZeroMQ client (broker_attack.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <set>

#include "tests/security/broker_attack.h"

namespace rma::testing::broker_attack {
namespace {

TEST(BrokerIdsAttack, TaskIdsOfConsecutiveSubmissionsAreUnguessable) {
  START_BROKER_OR_FAIL(broker);
  Client client(broker.clients_endpoint());
  // The attacker submits tasks of its own and looks at the ids it gets: on a broker whose ids are
  // a clock or a counter, a victim's id is a few steps from one of them.
  constexpr int kTasks = 200;
  std::vector<uint64_t> ids;
  for (int i = 0; i < kTasks; ++i) {
    auto id = client.Submit("nobody", "x");
    ASSERT_TRUE(id) << "submission " << i;
    ids.push_back(id->value());
  }
  EXPECT_EQ(std::set<uint64_t>(ids.begin(), ids.end()).size(), ids.size()) << "an id repeated";
  std::vector<uint64_t> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  uint64_t min_gap = UINT64_MAX;
  size_t at = 0;
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i] - sorted[i - 1] < min_gap) {
      min_gap = sorted[i] - sorted[i - 1];
      at = i;
    }
  }
  // 200 random 64-bit ids have two within 2^32 of each other with probability ~1e-5; ids made from
  // a clock, a counter or a time prefix with few random bits do every time.
  std::printf("200 task ids: smallest gap between two of them 2^%.1f (%llu and %llu)\n",
              std::log2(static_cast<double>(min_gap)),
              static_cast<unsigned long long>(sorted[at - 1]),
              static_cast<unsigned long long>(sorted[at]));
  EXPECT_GE(min_gap, uint64_t{1} << 32)
      << "two task ids are only " << min_gap << " apart (" << sorted[at - 1] << ", " << sorted[at]
      << "): an attacker can guess other clients' ids from its own; first ids " << ids[0] << ", "
      << ids[1] << ", " << ids[2];
  // And no order to exploit: consecutive submissions do not get increasing ids.
  EXPECT_FALSE(std::is_sorted(ids.begin(), ids.end()))
      << "ids increase with every submission: the next one is predictable";
}

bool Lists(const std::vector<proto::TaskView>& tasks, TaskId id) {
  return std::any_of(tasks.begin(), tasks.end(),
                     [&](const proto::TaskView& t) { return t.task_id == id; });
}

TEST(BrokerOwnershipAttack, AnotherOwnerCannotReadCancelListOrReuseATask) {
  START_BROKER_OR_FAIL(broker);
  Client alice(broker.clients_endpoint());
  Client mallory(broker.clients_endpoint());
  auto task = alice.Submit("nobody", "alice's private input", "alice", "alice-key-1");
  ASSERT_TRUE(task);

  // Attack 1: read it.
  std::string error;
  auto seen = mallory.Get(*task, "mallory", false, &error);
  EXPECT_FALSE(seen) << "another owner read alice's task (" << StatusOf(seen) << ", owner '"
                     << (seen ? seen->owner : "") << "')";
  EXPECT_EQ(error, "not_found") << "the answer must not tell an unknown id from another's task";

  // Attack 2: cancel it.
  auto cancelled = mallory.Cancel(*task, "mallory", false, &error);
  EXPECT_FALSE(cancelled) << "another owner cancelled alice's task: it is " << StatusOf(cancelled);
  EXPECT_EQ(error, "not_found");

  // Attack 3: list it.
  EXPECT_FALSE(Lists(mallory.List("mallory"), *task)) << "another owner's list shows alice's task";

  // Attack 4: reuse alice's idempotency key to get her task back.
  bool duplicate = false;
  auto own =
      mallory.Submit("nobody", "mallory's input", "mallory", "alice-key-1", &error, &duplicate);
  ASSERT_TRUE(own) << error;
  EXPECT_NE(*own, *task) << "reusing alice's idempotency key returned alice's task";
  EXPECT_FALSE(duplicate);

  // Nothing changed for alice: her task is queued, hers alone, and her key still names it.
  auto mine = alice.Get(*task, "alice");
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine->status, proto::TaskStatus::kQueued);
  EXPECT_EQ(std::string(alice.Get(*task, "alice")->owner), "alice");
  EXPECT_TRUE(Lists(alice.List("alice"), *task));
  EXPECT_FALSE(Lists(alice.List("alice"), *own)) << "alice's list shows mallory's task";
  bool again = false;
  auto same =
      alice.Submit("nobody", "alice's private input", "alice", "alice-key-1", &error, &again);
  ASSERT_TRUE(same);
  EXPECT_EQ(*same, *task);
  EXPECT_TRUE(again);

  // An admin sees everybody's tasks.
  Client ops(broker.clients_endpoint());
  EXPECT_TRUE(ops.Get(*task, "ops", /*admin=*/true));
  EXPECT_TRUE(ops.Get(*own, "ops", /*admin=*/true));
  auto all = ops.List("ops", /*admin=*/true);
  EXPECT_TRUE(Lists(all, *task) && Lists(all, *own));
  EXPECT_FALSE(Lists(ops.List("ops", /*admin=*/false), *task));
}

}  // namespace
}  // namespace rma::testing::broker_attack
