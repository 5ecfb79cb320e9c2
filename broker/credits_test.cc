// CreditBook (credits.h): prices, the entries an accepted result makes, balances and the enforce
// check, without a database.
#include "broker/credits.h"

#include <gtest/gtest.h>

namespace rma::broker {
namespace {

CreditConfig Config(CreditMode mode) {
  CreditConfig c;
  c.mode = mode;
  c.multipliers["vllm"] = 2.0;
  c.min_credits["vllm"] = 10;
  c.default_min_credits = 1;
  return c;
}

CreditBook::Accepted Result(std::string_view owner, std::string_view worker_account, uint32_t tier,
                            Duration run, std::string_view service = "echo") {
  CreditBook::Accepted r;
  r.task_id = TaskId(42);
  r.attempt = 2;
  r.service = service;
  r.owner = owner;
  r.worker_account = worker_account;
  r.worker_id = "w1";
  r.tier = tier;
  r.run = run;
  return r;
}

const Time kNow = FromUnixMs(1'800'000'000'000);

TEST(CreditBookTest, PriceIsComputeSecondsTimesTierWeightTimesServiceMultiplier) {
  CreditBook book(Config(CreditMode::kTrack));
  EXPECT_DOUBLE_EQ(book.Price("echo", 1, 2.0), 6.0);   // GPU weight 3
  EXPECT_DOUBLE_EQ(book.Price("echo", 2, 2.0), 3.0);   // CPU weight 1.5
  EXPECT_DOUBLE_EQ(book.Price("echo", 3, 2.0), 2.0);   // storage weight 1
  EXPECT_DOUBLE_EQ(book.Price("vllm", 1, 2.0), 12.0);  // multiplier 2
  EXPECT_DOUBLE_EQ(book.Price("echo", 3, -1.0), 0.0);
  EXPECT_DOUBLE_EQ(book.Price("echo", 3, 1e-9), 0.0);  // micro-credit precision
}

TEST(CreditBookTest, AnAcceptedResultEarnsTheWorkersAccountAndCostsTheSubmitterPlusTheFee) {
  CreditConfig config = Config(CreditMode::kTrack);
  config.fee = 0.5;
  CreditBook book(config);
  book.Learn({{"alice", "member", 100}, {"bob", "member", 0}});
  auto entries = book.OnAccepted(kNow, Result("alice", "bob", 2, Seconds(4)));
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].account, "bob");
  EXPECT_EQ(entries[0].kind, "earned");
  EXPECT_DOUBLE_EQ(entries[0].amount, 6.0);  // 4 s x 1.5
  EXPECT_EQ(entries[0].task_id, TaskId(42));
  EXPECT_EQ(entries[0].attempt, 2u);
  EXPECT_EQ(entries[0].worker_id, "w1");
  EXPECT_DOUBLE_EQ(entries[0].compute_s, 4.0);
  EXPECT_EQ(entries[1].account, "alice");
  EXPECT_EQ(entries[1].kind, "spent");
  EXPECT_DOUBLE_EQ(entries[1].amount, -6.5);
  EXPECT_DOUBLE_EQ(*book.Balance("bob"), 6.0);
  EXPECT_DOUBLE_EQ(*book.Balance("alice"), 93.5);
}

TEST(CreditBookTest, NoEntriesWhenOffOrForNamesThatAreNoAccounts) {
  CreditBook off(Config(CreditMode::kOff));
  off.Learn({{"alice", "member", 100}, {"bob", "member", 0}});
  EXPECT_TRUE(off.OnAccepted(kNow, Result("alice", "bob", 1, Seconds(1))).empty());

  CreditBook book(Config(CreditMode::kTrack));
  book.Learn({{"alice", "member", 100}});
  // An anonymous task, a worker without an account, a gateway-configured key's name.
  EXPECT_TRUE(book.OnAccepted(kNow, Result("", "", 1, Seconds(1))).empty());
  auto entries = book.OnAccepted(kNow, Result("alice", "ghost", 1, Seconds(1)));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].kind, "spent");
  EXPECT_FALSE(book.Balance("ghost").has_value());
}

TEST(CreditBookTest, EnforceRefusesAnAccountBelowTheServiceMinimumExceptAdminsAndTheFreeTier) {
  CreditConfig config = Config(CreditMode::kEnforce);
  config.free_accounts.insert("student");
  CreditBook book(config);
  book.Learn({{"poor", "member", 5},
              {"rich", "member", 50},
              {"root", "admin", 0},
              {"student", "member", 0}});
  auto refused = book.CheckSubmit("poor", "vllm");
  ASSERT_TRUE(refused.has_value());
  EXPECT_DOUBLE_EQ(refused->balance, 5);
  EXPECT_DOUBLE_EQ(refused->needed, 10);
  EXPECT_FALSE(book.CheckSubmit("poor", "echo").has_value());  // default minimum 1
  EXPECT_FALSE(book.CheckSubmit("rich", "vllm").has_value());
  EXPECT_FALSE(book.CheckSubmit("root", "vllm").has_value());
  EXPECT_FALSE(book.CheckSubmit("student", "vllm").has_value());
  EXPECT_FALSE(book.CheckSubmit("", "vllm").has_value());            // anonymous (open pool)
  EXPECT_FALSE(book.CheckSubmit("configured", "vllm").has_value());  // not an account

  CreditBook track(Config(CreditMode::kTrack));
  track.Learn({{"poor", "member", 0}});
  EXPECT_FALSE(track.CheckSubmit("poor", "vllm").has_value());  // track never refuses
}

TEST(CreditBookTest, LearningAgainKeepsTheBalancesTheBookMovedAndTakesNewAccounts) {
  CreditBook book(Config(CreditMode::kTrack));
  book.Learn({{"alice", "member", 10}});
  book.OnAccepted(kNow, Result("alice", "", 3, Seconds(2)));  // -2, not committed yet
  book.Apply("alice", 5);                                     // a grant the store confirmed
  // The record, read back after another account change, does not hold the spend yet.
  book.Learn({{"alice", "admin", 10}, {"bob", "member", 7}});
  EXPECT_DOUBLE_EQ(*book.Balance("alice"), 13);
  EXPECT_DOUBLE_EQ(*book.Balance("bob"), 7);
  // The role was taken: alice is exempt now.
  CreditConfig enforce = Config(CreditMode::kEnforce);
  CreditBook strict(enforce);
  strict.Learn({{"alice", "member", 0}});
  EXPECT_TRUE(strict.CheckSubmit("alice", "echo").has_value());
  strict.Learn({{"alice", "admin", 0}});
  EXPECT_FALSE(strict.CheckSubmit("alice", "echo").has_value());
}

TEST(CreditBookTest, ModesAndAmountsParseAndPrint) {
  EXPECT_EQ(*ParseCreditMode("enforce"), CreditMode::kEnforce);
  EXPECT_EQ(*ParseCreditMode("track"), CreditMode::kTrack);
  EXPECT_EQ(*ParseCreditMode("off"), CreditMode::kOff);
  EXPECT_FALSE(ParseCreditMode("on").ok());
  EXPECT_EQ(FormatCredits(12.5), "12.5");
  EXPECT_EQ(FormatCredits(3), "3");
  EXPECT_EQ(FormatCredits(0.000125), "0.000125");
  EXPECT_EQ(FormatCredits(-0.0000001), "0");
}

}  // namespace
}  // namespace rma::broker
