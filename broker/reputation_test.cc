// ReputationBook (reputation.h): every state change, decay on a fake clock, sampling, the bound on
// memory, account roll-ups, admin overrides, and simulated liars and honest workers; the config
// section's parsing (reputation_config.h).
#include "broker/reputation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>

#include "broker/reputation_config.h"

namespace rma::broker {
namespace {

const Time kT0 = FromUnixMs(1'800'000'000'000);
const Duration kHour = Seconds(3600);
const Duration kDay = Seconds(24 * 3600);

// Drives one credential's events at a fixed time unless told otherwise.
struct Worker {
  ReputationBook* book;
  std::string key;
  std::string account = "alice";
  Time now = kT0;

  std::optional<ReputationTransition> Accepted(int n = 1) {
    return Repeat(n, &ReputationBook::OnAccepted);
  }
  std::optional<ReputationTransition> Errors(int n = 1) {
    return Repeat(n, &ReputationBook::OnError);
  }
  std::optional<ReputationTransition> Timeouts(int n = 1) {
    return Repeat(n, &ReputationBook::OnTimeout);
  }
  std::optional<ReputationTransition> Abandoned(int n = 1) {
    return Repeat(n, &ReputationBook::OnAbandoned);
  }
  std::optional<ReputationTransition> Agreements(int n = 1) {
    return Repeat(n, &ReputationBook::OnAgreement);
  }
  std::optional<ReputationTransition> Disagreements(int n = 1) {
    return Repeat(n, &ReputationBook::OnDisagreement);
  }
  WorkerState State() const { return book->State(key); }

  // The last transition among n events (and fails the test if an earlier one made one too, so each
  // test states exactly which event changes the state).
  std::optional<ReputationTransition> Repeat(
      int n, std::optional<ReputationTransition> (ReputationBook::*event)(Time, std::string_view,
                                                                          std::string_view)) {
    std::optional<ReputationTransition> last;
    for (int i = 0; i < n; ++i) {
      EXPECT_FALSE(last.has_value()) << "an earlier event of " << n << " changed the state";
      last = (book->*event)(now, key, account);
    }
    return last;
  }
};

// A book whose credentials finished probation with 20 accepted results at kT0.
Worker Graduate(ReputationBook* book, const std::string& key) {
  Worker w{book, key};
  auto t = w.Accepted(20);
  EXPECT_TRUE(t.has_value());
  EXPECT_EQ(w.State(), WorkerState::kGood);
  return w;
}

TEST(ReputationBookTest, ANewCredentialIsOnProbationUntilItsTwentiethResult) {
  ReputationBook book;
  Worker w{&book, "key-1"};
  EXPECT_EQ(book.State("never-seen"), WorkerState::kProbation);
  EXPECT_FALSE(w.Accepted(19).has_value());
  EXPECT_EQ(w.State(), WorkerState::kProbation);
  auto t = w.Accepted();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->key, "key-1");
  EXPECT_EQ(t->account, "alice");
  EXPECT_EQ(t->from, WorkerState::kProbation);
  EXPECT_EQ(t->to, WorkerState::kGood);
  EXPECT_NE(t->reason.find("probation over after 20 results"), std::string::npos) << t->reason;
  EXPECT_EQ(w.State(), WorkerState::kGood);
}

TEST(ReputationBookTest, ErrorsCountAsProbationResultsButTimeoutsAndAbandonsDoNot) {
  ReputationBook book;
  Worker w{&book, "k"};
  EXPECT_FALSE(w.Accepted(18).has_value());
  EXPECT_FALSE(w.Timeouts(1).has_value());
  EXPECT_FALSE(w.Abandoned(1).has_value());
  EXPECT_FALSE(w.Agreements(1).has_value());
  EXPECT_EQ(w.State(), WorkerState::kProbation);
  EXPECT_FALSE(w.Accepted().has_value());  // 19 results
  auto t = w.Errors();                     // 20
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->to, WorkerState::kGood);
  EXPECT_EQ(book.Snapshot(w.now, "k")->tasks, 20u);
}

TEST(ReputationBookTest, ProbationEndsInSuspectWhenTheScoreIsLow) {
  ReputationBook book;
  Worker w{&book, "k"};
  // reliability (2 + 15) / (2 + 15 + 5) = 0.77 < 0.8; not below 0.5, so not quarantined.
  EXPECT_FALSE(w.Accepted(15).has_value());
  EXPECT_FALSE(w.Errors(4).has_value());
  auto t = w.Errors();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->from, WorkerState::kProbation);
  EXPECT_EQ(t->to, WorkerState::kSuspect);
}

TEST(ReputationBookTest, NoProbationWhenProbationTasksIsZero) {
  ReputationConfig config;
  config.probation_tasks = 0;
  ReputationBook book(config);
  EXPECT_EQ(book.State("new"), WorkerState::kGood);
  EXPECT_EQ(book.RoutingBand("new"), 1u);
  Worker w{&book, "new"};
  EXPECT_FALSE(w.Accepted().has_value());
  EXPECT_EQ(w.State(), WorkerState::kGood);
}

TEST(ReputationBookTest, GoodTurnsSuspectBelowSuspectBelowAndBackOnlyAboveGoodAbove) {
  ReputationBook book;
  Worker w = Graduate(&book, "k");
  // reliability = 22 / (22 + errors): 5 errors 0.815, 6 errors 0.786 < 0.8.
  EXPECT_FALSE(w.Errors(5).has_value());
  auto down = w.Errors();
  ASSERT_TRUE(down.has_value());
  EXPECT_EQ(down->from, WorkerState::kGood);
  EXPECT_EQ(down->to, WorkerState::kSuspect);
  EXPECT_NE(down->reason.find("score 0.786 < 0.800"), std::string::npos) << down->reason;
  // Hysteresis: at 10 more accepted the score is 32/38 = 0.84, above suspect_below but not
  // good_above; at 31 more, 53/59 = 0.898; it takes (22 + a) / (28 + a) >= 0.9, a = 32.
  EXPECT_FALSE(w.Accepted(10).has_value());
  EXPECT_GT(book.Snapshot(w.now, "k")->score, 0.8);
  EXPECT_EQ(w.State(), WorkerState::kSuspect);
  EXPECT_FALSE(w.Accepted(21).has_value());
  EXPECT_EQ(w.State(), WorkerState::kSuspect);
  auto up = w.Accepted();
  ASSERT_TRUE(up.has_value());
  EXPECT_EQ(up->from, WorkerState::kSuspect);
  EXPECT_EQ(up->to, WorkerState::kGood);
}

TEST(ReputationBookTest, OneDisagreementMakesAFreshWorkerSuspectButNotQuarantined) {
  ReputationBook book;
  Worker w = Graduate(&book, "k");
  // honesty (2 + 0) / (2 + 5) = 0.29, below quarantine_below, but one disagreement is not evidence.
  auto t = w.Disagreements();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->to, WorkerState::kSuspect);
  EXPECT_LT(book.Snapshot(w.now, "k")->honesty, 0.5);
}

TEST(ReputationBookTest, QuarantineNeedsMinEvidenceFailuresBehindALowScore) {
  ReputationBook book;
  Worker w{&book, "k"};
  // After 4 errors reliability is 2 / (2 + 4) = 0.33 < 0.5, but 4 < min_evidence 4.5.
  EXPECT_FALSE(w.Errors(4).has_value());
  EXPECT_EQ(w.State(), WorkerState::kProbation);
  EXPECT_LT(book.Snapshot(w.now, "k")->reliability, 0.5);
  auto t = w.Errors();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->from, WorkerState::kProbation);
  EXPECT_EQ(t->to, WorkerState::kQuarantined);
  EXPECT_NE(t->reason.find("reliability 0.286 < 0.500 with 5.0 failed attempts"), std::string::npos)
      << t->reason;
}

TEST(ReputationBookTest, TimeoutsAndAbandonsWeighLessThanErrors) {
  ReputationBook book;
  Worker w{&book, "k"};
  ReputationConfig config;
  EXPECT_LT(config.timeout_weight, config.error_weight);
  EXPECT_LT(config.abandoned_weight, config.error_weight);
  EXPECT_FALSE(w.Accepted(2).has_value());
  // With 2 accepted: (4) / (4 + 0.5 * n) < 0.5 needs n > 8.
  EXPECT_FALSE(w.Timeouts(8).has_value());
  auto t = w.Timeouts();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->to, WorkerState::kQuarantined);

  Worker v{&book, "v"};
  EXPECT_FALSE(v.Accepted(2).has_value());
  EXPECT_FALSE(v.Abandoned(8).has_value());
  EXPECT_TRUE(v.Abandoned().has_value());
  EXPECT_EQ(v.State(), WorkerState::kQuarantined);
}

TEST(ReputationBookTest, ALiarIsQuarantinedDuringProbation) {
  ReputationBook book;
  Worker w{&book, "k"};
  EXPECT_FALSE(w.Accepted(5).has_value());
  EXPECT_FALSE(w.Agreements(2).has_value());
  // honesty (2 + 2) / (4 + 5 * 5) = 0.14 with 5 disagreements.
  EXPECT_FALSE(w.Disagreements(4).has_value());
  auto t = w.Disagreements();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->from, WorkerState::kProbation);
  EXPECT_EQ(t->to, WorkerState::kQuarantined);
  EXPECT_NE(t->reason.find("honesty"), std::string::npos) << t->reason;
  EXPECT_LT(book.Snapshot(w.now, "k")->tasks, 20u);
  // Still in its first 20 results, it does not go back to probation by agreeing from now on.
  EXPECT_FALSE(w.Agreements(100).has_value());
  EXPECT_FALSE(w.Accepted(5).has_value());
  EXPECT_EQ(w.State(), WorkerState::kQuarantined);
}

TEST(ReputationBookTest, QuarantineIsStickyUntilAnAdminActs) {
  ReputationBook book;
  Worker w = Graduate(&book, "k");
  EXPECT_EQ(w.Disagreements()->to, WorkerState::kSuspect);
  EXPECT_EQ(w.Disagreements(4)->to, WorkerState::kQuarantined);
  EXPECT_FALSE(book.Routable("k"));
  EXPECT_FALSE(book.RoutingBand("k").has_value());
  // Neither good work nor time lifts it.
  EXPECT_FALSE(w.Accepted(500).has_value());
  EXPECT_FALSE(w.Agreements(500).has_value());
  w.now += 30 * kDay;
  EXPECT_FALSE(w.Accepted().has_value());
  EXPECT_GT(book.Snapshot(w.now, "k")->score, 0.9);
  EXPECT_EQ(w.State(), WorkerState::kQuarantined);
}

TEST(ReputationBookTest, AdminQuarantineAndBanAreNotRoutableAndStay) {
  ReputationBook book;
  Worker w = Graduate(&book, "k");
  auto q = book.SetTrust(w.now, "k", Trust::kQuarantined);
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->from, WorkerState::kGood);
  EXPECT_EQ(q->to, WorkerState::kQuarantined);
  EXPECT_EQ(q->reason, "admin: quarantined");
  EXPECT_FALSE(w.Agreements(100).has_value());
  EXPECT_EQ(w.State(), WorkerState::kQuarantined);

  auto b = book.SetTrust(w.now, "k", Trust::kBanned);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->from, WorkerState::kQuarantined);
  EXPECT_EQ(b->to, WorkerState::kBanned);
  EXPECT_FALSE(w.Accepted(100).has_value());
  EXPECT_EQ(w.State(), WorkerState::kBanned);
  EXPECT_FALSE(book.Routable("k"));
  // Banned is only ever an admin's doing: no rule produces it.
  Worker liar{&book, "liar"};
  liar.Disagreements(4);
  EXPECT_EQ(liar.Disagreements()->to, WorkerState::kQuarantined);
  EXPECT_FALSE(liar.Disagreements(50).has_value());
  EXPECT_EQ(liar.State(), WorkerState::kQuarantined);
}

TEST(ReputationBookTest, ATrustedWorkerIsRoutedFirstAndNeverAutoQuarantined) {
  ReputationBook book;
  Worker w{&book, "k"};
  EXPECT_FALSE(w.Accepted(3).has_value());
  auto t = book.SetTrust(w.now, "k", Trust::kTrusted);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->from, WorkerState::kProbation);
  EXPECT_EQ(t->to, WorkerState::kGood);
  EXPECT_EQ(t->reason, "admin: trusted");
  EXPECT_TRUE(book.Trusted("k"));
  EXPECT_EQ(book.RoutingBand("k"), 0u);
  // Outcomes are still counted and shown, but change nothing.
  EXPECT_FALSE(w.Disagreements(20).has_value());
  EXPECT_FALSE(w.Errors(20).has_value());
  EXPECT_EQ(w.State(), WorkerState::kGood);
  auto s = book.Snapshot(w.now, "k");
  ASSERT_TRUE(s.has_value());
  EXPECT_TRUE(s->trusted);
  EXPECT_DOUBLE_EQ(s->counts.disagreements, 20);
  EXPECT_LT(s->score, 0.5);
}

TEST(ReputationBookTest, TrustingAQuarantinedWorkerLiftsTheQuarantine) {
  ReputationBook book;
  Worker w{&book, "k"};
  w.Errors(4);
  ASSERT_TRUE(w.Errors().has_value());
  ASSERT_EQ(w.State(), WorkerState::kQuarantined);
  auto t = book.SetTrust(w.now, "k", Trust::kTrusted);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->from, WorkerState::kQuarantined);
  EXPECT_EQ(t->to, WorkerState::kGood);
  EXPECT_TRUE(book.Routable("k"));
}

TEST(ReputationBookTest, NormalGivesAFreshStartOnProbation) {
  ReputationBook book;
  Worker w = Graduate(&book, "k");
  ASSERT_EQ(w.Disagreements()->to, WorkerState::kSuspect);
  ASSERT_EQ(w.Disagreements(4)->to, WorkerState::kQuarantined);

  w.now += kHour;
  auto t = book.SetTrust(w.now, "k", Trust::kNormal);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->from, WorkerState::kQuarantined);
  EXPECT_EQ(t->to, WorkerState::kProbation);
  EXPECT_EQ(t->reason, "admin: normal");
  auto s = book.Snapshot(w.now, "k");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->state, WorkerState::kProbation);
  EXPECT_EQ(s->tasks, 0u);
  EXPECT_EQ(s->streak, 0u);
  EXPECT_DOUBLE_EQ(s->counts.disagreements, 0);
  EXPECT_DOUBLE_EQ(s->counts.accepted, 0);
  EXPECT_EQ(s->since, w.now);
  // With the old counts one more disagreement would quarantine again (6 of them, honesty 0.06).
  EXPECT_FALSE(w.Disagreements().has_value());
  EXPECT_EQ(w.State(), WorkerState::kProbation);
  EXPECT_EQ(book.RoutingBand("k"), 2u);

  // Normal also takes trust away.
  ASSERT_TRUE(book.SetTrust(w.now, "k", Trust::kTrusted).ok());
  ASSERT_TRUE(book.SetTrust(w.now, "k", Trust::kNormal).ok());
  EXPECT_FALSE(book.Trusted("k"));
  EXPECT_EQ(book.RoutingBand("k"), 2u);
}

TEST(ReputationBookTest, ParseTrustKnowsTheAdminApiNames) {
  for (Trust t : {Trust::kTrusted, Trust::kNormal, Trust::kQuarantined, Trust::kBanned}) {
    auto parsed = ParseTrust(TrustName(t));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, t);
  }
  auto bad = ParseTrust("good");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'good'"), std::string::npos);
  EXPECT_EQ(StateName(WorkerState::kProbation), "probation");
  EXPECT_EQ(StateName(WorkerState::kGood), "good");
  EXPECT_EQ(StateName(WorkerState::kSuspect), "suspect");
  EXPECT_EQ(StateName(WorkerState::kQuarantined), "quarantined");
  EXPECT_EQ(StateName(WorkerState::kBanned), "banned");
}

TEST(ReputationBookTest, CountsHalveEveryHalfLife) {
  ReputationBook book;
  Worker w{&book, "k"};
  w.Accepted(8);
  w.Errors(4);
  w.Agreements(2);
  auto now = book.Snapshot(kT0, "k");
  auto day = book.Snapshot(kT0 + kDay, "k");
  auto three = book.Snapshot(kT0 + 3 * kDay, "k");
  ASSERT_TRUE(now && day && three);
  EXPECT_DOUBLE_EQ(now->counts.errors, 4);
  EXPECT_NEAR(day->counts.errors, 2, 1e-9);
  EXPECT_NEAR(day->counts.accepted, 4, 1e-9);
  EXPECT_NEAR(three->counts.agreements, 0.25, 1e-9);
  EXPECT_EQ(three->tasks, 12u);  // undecayed
  // Events fold the decay in: one more error a day later makes 2 + 1.
  w.now = kT0 + kDay;
  w.Errors();
  EXPECT_NEAR(book.Snapshot(w.now, "k")->counts.errors, 3, 1e-9);
  // A clock that went back decays nothing and inflates nothing.
  EXPECT_NEAR(book.Snapshot(kT0, "k")->counts.errors, 3, 1e-9);
}

TEST(ReputationBookTest, OldErrorsAreForgivenAfterSeveralHalfLives) {
  ReputationBook book;
  Worker w = Graduate(&book, "k");
  ASSERT_TRUE(w.Errors(6).has_value());
  ASSERT_EQ(w.State(), WorkerState::kSuspect);
  // A day later (accepted 10 + 1, errors 3: 13/16 = 0.81) one result is not enough...
  w.now += kDay;
  EXPECT_FALSE(w.Accepted().has_value());
  EXPECT_EQ(w.State(), WorkerState::kSuspect);
  // ...five half-lives later it is: the errors weigh 6/32.
  w.now += 5 * kDay;
  auto t = w.Accepted();
  ASSERT_TRUE(t.has_value());
  EXPECT_EQ(t->to, WorkerState::kGood);
}

TEST(ReputationBookTest, OldFailuresDoNotAddUpToAQuarantine) {
  ReputationBook book;
  Worker w{&book, "k"};
  EXPECT_FALSE(w.Errors(4).has_value());
  // Without decay the fifth error would quarantine (2/7 with 5 failures); ten half-lives later the
  // first four weigh 4/1024.
  w.now += 10 * kDay;
  EXPECT_FALSE(w.Errors().has_value());
  EXPECT_EQ(w.State(), WorkerState::kProbation);
  EXPECT_NEAR(book.Snapshot(w.now, "k")->counts.errors, 1 + 4.0 / 1024, 1e-9);
}

TEST(ReputationBookTest, HalfLifeComesFromTheConfig) {
  ReputationConfig config;
  config.half_life = kHour;
  ReputationBook book(config);
  Worker w{&book, "k"};
  w.Errors(4);
  EXPECT_NEAR(book.Snapshot(kT0 + 2 * kHour, "k")->counts.errors, 1, 1e-9);
}

// The chance p as a threshold on mt19937's raw 32-bit output, whose sequence the standard fixes
// (the distributions' algorithms are up to each library).
bool Chance(std::mt19937& rng, double p) { return static_cast<double>(rng()) < p * 4294967296.0; }

struct Simulated {
  int quarantined_at = 0;  // the 1-based task at which it was quarantined, 0 if never
  int verified = 0;
};

// One simulated worker: a task every 30 s; an error with probability `error`, else an accepted
// result, verified with the book's SampleRate at `base`; a verified one disagrees with probability
// `lie` (a wrong result caught: the tie-break found this worker wrong).
Simulated Simulate(ReputationBook& book, const std::string& key, uint32_t seed, int tasks,
                   double lie, double error, double base) {
  std::mt19937 rng(seed);
  Simulated out;
  Time now = kT0;
  for (int i = 1; i <= tasks; ++i) {
    now += Seconds(30);
    if (Chance(rng, error)) {
      (void)book.OnError(now, key, "acct");
    } else {
      (void)book.OnAccepted(now, key, "acct");
      if (Chance(rng, book.SampleRate(key, base))) {
        ++out.verified;
        if (Chance(rng, lie)) {
          (void)book.OnDisagreement(now, key, "acct");
        } else {
          (void)book.OnAgreement(now, key, "acct");
        }
      }
    }
    if (book.State(key) == WorkerState::kQuarantined) {
      out.quarantined_at = i;
      break;
    }
  }
  return out;
}

TEST(ReputationBookTest, ALiarIsQuarantinedWithinTwoHundredTasks) {
  // 30% of its checked results are wrong; the service samples 20% of tasks.
  for (uint32_t seed = 1; seed <= 100; ++seed) {
    ReputationBook book;
    Simulated s = Simulate(book, "liar", seed, 200, /*lie=*/0.3, /*error=*/0, /*base=*/0.2);
    EXPECT_GT(s.quarantined_at, 0) << "seed " << seed << ": not quarantined in 200 tasks";
  }
  // At 10% a few liars pass their first checks by luck and take longer (a 30% liar passes ten
  // checks in a row 3% of the time, twenty 0.08%: its sampling then falls with its streak, until
  // its next lie caught puts it back to the base rate), but not much longer.
  int within_200 = 0;
  int within_400 = 0;
  for (uint32_t seed = 1; seed <= 200; ++seed) {
    ReputationBook book;
    Simulated s = Simulate(book, "liar", seed, 400, /*lie=*/0.3, /*error=*/0, /*base=*/0.1);
    if (s.quarantined_at > 0) ++within_400;
    if (s.quarantined_at > 0 && s.quarantined_at <= 200) ++within_200;
  }
  EXPECT_GE(within_200, 190);
  EXPECT_GE(within_400, 199);
}

TEST(ReputationBookTest, AnHonestWorkerWithRareErrorsIsNeverQuarantined) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    ReputationBook book;
    Simulated s = Simulate(book, "honest", seed, 2000, /*lie=*/0, /*error=*/0.01, /*base=*/0.1);
    EXPECT_EQ(s.quarantined_at, 0) << "seed " << seed;
    EXPECT_EQ(book.State("honest"), WorkerState::kGood) << "seed " << seed;
    // Adaptive replication: its long streak cuts verification well below the base 10%.
    EXPECT_LT(s.verified, 2000 * 0.05) << "seed " << seed;
    EXPECT_GT(book.Snapshot(kT0, "honest")->streak, 10u);
  }
}

TEST(ReputationBookTest, SampleRateFollowsStateAndStreak) {
  ReputationBook book;
  // Unknown and on probation: three times the base, at most 1; base 0 stays 0.
  EXPECT_DOUBLE_EQ(book.SampleRate("new", 0.1), 0.5);
  EXPECT_DOUBLE_EQ(book.SampleRate("new", 0.4), 1.0);
  EXPECT_DOUBLE_EQ(book.SampleRate("new", 7), 1.0);
  EXPECT_DOUBLE_EQ(book.SampleRate("new", 0), 0);
  EXPECT_DOUBLE_EQ(book.SampleRate("new", -1), 0);

  Worker w = Graduate(&book, "k");
  EXPECT_DOUBLE_EQ(book.SampleRate("k", 0.1), 0.1);  // good, streak 0
  w.Agreements(10);
  EXPECT_DOUBLE_EQ(book.SampleRate("k", 0.1), 0.1);  // the first 10 earn no discount
  w.Agreements(10);
  EXPECT_DOUBLE_EQ(book.SampleRate("k", 0.1), 0.05);  // 10 / 20
  w.Agreements(20);
  EXPECT_DOUBLE_EQ(book.SampleRate("k", 0.1), 0.025);  // 10 / 40
  w.Agreements(1000);
  EXPECT_DOUBLE_EQ(book.SampleRate("k", 0.1), 0.1 * 0.1);  // the floor
  EXPECT_DOUBLE_EQ(book.SampleRate("k", 0), 0);
  EXPECT_EQ(book.Snapshot(w.now, "k")->streak, 1040u);
  // A disagreement ends the streak (and, here, 1040 agreements keep it good).
  EXPECT_FALSE(w.Disagreements().has_value());
  EXPECT_EQ(book.Snapshot(w.now, "k")->streak, 0u);
  EXPECT_DOUBLE_EQ(book.SampleRate("k", 0.1), 0.1);

  Worker s = Graduate(&book, "s");
  ASSERT_TRUE(s.Errors(6).has_value());
  ASSERT_EQ(s.State(), WorkerState::kSuspect);
  EXPECT_DOUBLE_EQ(book.SampleRate("s", 0.1), 0.5);

  ASSERT_TRUE(book.SetTrust(kT0, "t", Trust::kTrusted).ok());
  EXPECT_DOUBLE_EQ(book.SampleRate("t", 0.1), 0.01);
  ASSERT_TRUE(book.SetTrust(kT0, "q", Trust::kQuarantined).ok());
  EXPECT_DOUBLE_EQ(book.SampleRate("q", 0.1), 1.0);
  EXPECT_DOUBLE_EQ(book.SampleRate("q", 0), 0);
}

TEST(ReputationBookTest, RoutingBandsOrderTrustedGoodProbationSuspect) {
  ReputationBook book;
  Graduate(&book, "good");
  Worker suspect = Graduate(&book, "suspect");
  ASSERT_TRUE(suspect.Errors(6).has_value());
  Worker fresh{&book, "fresh"};
  fresh.Accepted();
  ASSERT_TRUE(book.SetTrust(kT0, "trusted", Trust::kTrusted).ok());
  ASSERT_TRUE(book.SetTrust(kT0, "banned", Trust::kBanned).ok());
  EXPECT_EQ(book.RoutingBand("trusted"), 0u);
  EXPECT_EQ(book.RoutingBand("good"), 1u);
  EXPECT_EQ(book.RoutingBand("fresh"), 2u);
  EXPECT_EQ(book.RoutingBand("unknown"), 2u);
  EXPECT_EQ(book.RoutingBand("suspect"), 3u);
  EXPECT_FALSE(book.RoutingBand("banned").has_value());
  EXPECT_TRUE(book.Routable("suspect"));
  EXPECT_FALSE(book.Routable("banned"));
}

TEST(ReputationBookTest, WhenFullTheLeastRecentlyHeardFromIsForgottenButNotAVerdict) {
  ReputationConfig config;
  config.max_entries = 3;
  ReputationBook book(config);
  ASSERT_TRUE(book.SetTrust(kT0, "q", Trust::kQuarantined).ok());  // oldest, but pinned
  (void)book.OnAccepted(kT0 + Seconds(1), "b", "bob");
  (void)book.OnAccepted(kT0 + Seconds(2), "c", "carol");
  EXPECT_EQ(book.size(), 3u);

  (void)book.OnAccepted(kT0 + Seconds(3), "d", "dave");
  EXPECT_EQ(book.size(), 3u);
  EXPECT_FALSE(book.Snapshot(kT0, "b").has_value());
  EXPECT_EQ(book.AccountSummary(kT0, "bob").credentials, 0u);
  EXPECT_EQ(book.State("q"), WorkerState::kQuarantined);

  // Hearing from c again makes d the least recent.
  (void)book.OnAccepted(kT0 + Seconds(4), "c", "carol");
  (void)book.OnAccepted(kT0 + Seconds(5), "e", "erin");
  EXPECT_FALSE(book.Snapshot(kT0, "d").has_value());
  EXPECT_TRUE(book.Snapshot(kT0, "c").has_value());
  EXPECT_TRUE(book.Snapshot(kT0, "e").has_value());
  EXPECT_EQ(book.State("q"), WorkerState::kQuarantined);
  EXPECT_EQ(book.untracked(), 0u);
}

TEST(ReputationBookTest, ABookFullOfVerdictsRecordsNoNewCredential) {
  ReputationConfig config;
  config.max_entries = 2;
  ReputationBook book(config);
  ASSERT_TRUE(book.SetTrust(kT0, "t", Trust::kTrusted).ok());
  ASSERT_TRUE(book.SetTrust(kT0, "b", Trust::kBanned).ok());
  EXPECT_FALSE(book.OnAccepted(kT0, "new", "x").has_value());
  EXPECT_EQ(book.size(), 2u);
  EXPECT_EQ(book.untracked(), 1u);
  EXPECT_EQ(book.State("new"), WorkerState::kProbation);
  auto set = book.SetTrust(kT0, "new", Trust::kBanned);
  ASSERT_FALSE(set.ok());
  EXPECT_EQ(set.status().code(), StatusCode::kResourceExhausted);
  // A credential set back to normal may be forgotten again, which makes room.
  ASSERT_TRUE(book.SetTrust(kT0, "t", Trust::kNormal).ok());
  (void)book.OnAccepted(kT0 + Seconds(1), "new", "x");
  EXPECT_TRUE(book.Snapshot(kT0, "new").has_value());
  EXPECT_FALSE(book.Snapshot(kT0, "t").has_value());
  EXPECT_EQ(book.State("b"), WorkerState::kBanned);
}

TEST(ReputationBookTest, AccountSummaryRollsUpItsCredentials) {
  ReputationBook book;
  Graduate(&book, "k1");
  Worker bad{&book, "k2"};
  bad.Errors(4);
  ASSERT_TRUE(bad.Errors().has_value());  // quarantined
  Worker fresh{&book, "k3"};
  fresh.Accepted(2);
  ASSERT_TRUE(book.SetTrust(kT0, "k4", Trust::kTrusted).ok());
  (void)book.OnAccepted(kT0, "k4", "alice");
  Worker other{&book, "k5", "bob"};
  other.Errors(3);

  AccountReputation a = book.AccountSummary(kT0 + kDay, "alice");
  EXPECT_EQ(a.account, "alice");
  EXPECT_EQ(a.credentials, 4u);
  EXPECT_EQ(a.trusted, 1u);
  EXPECT_EQ(a.worst, WorkerState::kQuarantined);
  EXPECT_EQ(a.per_state[static_cast<size_t>(WorkerState::kGood)], 2u);  // k1, k4
  EXPECT_EQ(a.per_state[static_cast<size_t>(WorkerState::kQuarantined)], 1u);
  EXPECT_EQ(a.per_state[static_cast<size_t>(WorkerState::kProbation)], 1u);
  EXPECT_NEAR(a.counts.accepted, (20 + 2 + 1) / 2.0, 1e-9);  // a day later: halved
  EXPECT_NEAR(a.counts.errors, 5 / 2.0, 1e-9);

  // A credential that shows up under another account moves there.
  (void)book.OnAccepted(kT0, "k3", "bob");
  EXPECT_EQ(book.AccountSummary(kT0, "alice").credentials, 3u);
  AccountReputation b = book.AccountSummary(kT0, "bob");
  EXPECT_EQ(b.credentials, 2u);
  EXPECT_EQ(b.worst, WorkerState::kProbation);
  EXPECT_DOUBLE_EQ(b.counts.errors, 3);

  AccountReputation none = book.AccountSummary(kT0, "nobody");
  EXPECT_EQ(none.credentials, 0u);
  EXPECT_EQ(none.worst, WorkerState::kGood);
}

TEST(ReputationBookTest, SnapshotShowsEverythingTheAdminApiNeeds) {
  ReputationBook book;
  Worker w{&book, "k"};
  w.Accepted(20);
  w.now = kT0 + kHour;
  w.Errors();
  w.Timeouts(2);
  w.Abandoned();
  w.Agreements(20);
  w.Disagreements();  // honesty 22 / 27 = 0.81: still good
  w.Agreements(2);
  auto s = book.Snapshot(w.now, "k");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->key, "k");
  EXPECT_EQ(s->account, "alice");
  EXPECT_EQ(s->tasks, 21u);
  EXPECT_EQ(s->streak, 2u);
  EXPECT_DOUBLE_EQ(s->counts.errors, 1);
  EXPECT_DOUBLE_EQ(s->counts.timeouts, 2);
  EXPECT_DOUBLE_EQ(s->counts.abandoned, 1);
  EXPECT_DOUBLE_EQ(s->counts.agreements, 22);
  EXPECT_DOUBLE_EQ(s->counts.disagreements, 1);
  EXPECT_EQ(s->last_seen, w.now);
  EXPECT_EQ(s->since, kT0);  // good since its 20th result
  EXPECT_EQ(s->state, WorkerState::kGood);
  // honesty (2 + 22) / (24 + 5); reliability (2 + 20 * 2^(-1/24)) / (... + 1 + 2 * 0.5 + 0.5).
  EXPECT_NEAR(s->honesty, 24.0 / 29.0, 1e-9);
  const double accepted = 20 * std::exp2(-1.0 / 24);
  EXPECT_NEAR(s->counts.accepted, accepted, 1e-9);
  EXPECT_NEAR(s->reliability, (2 + accepted) / (2 + accepted + 2.5), 1e-9);
  EXPECT_DOUBLE_EQ(s->score, std::min(s->honesty, s->reliability));
  EXPECT_FALSE(s->trusted);
  EXPECT_FALSE(book.Snapshot(w.now, "unknown").has_value());
}

TEST(ReputationConfigTest, DefaultsAreValidAndBrokenOnesAreRefused) {
  EXPECT_TRUE(ReputationConfig{}.Validate().ok());
  auto refused = [](auto change, const std::string& key) {
    ReputationConfig c;
    change(c);
    Status s = c.Validate();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << key;
    EXPECT_NE(s.message().find(key), std::string::npos) << s.message();
  };
  refused([](ReputationConfig& c) { c.half_life = Ms(999); }, "half_life_s");
  refused([](ReputationConfig& c) { c.prior_good = 0; }, "prior_good");
  refused([](ReputationConfig& c) { c.error_weight = -1; }, "error_weight");
  refused([](ReputationConfig& c) { c.disagreement_weight = -0.5; }, "disagreement_weight");
  refused([](ReputationConfig& c) { c.suspect_below = 0.95; }, "suspect_below");  // > good_above
  refused([](ReputationConfig& c) { c.quarantine_below = 0.85; }, "quarantine_below");
  refused([](ReputationConfig& c) { c.good_above = 1.5; }, "good_above");
  refused([](ReputationConfig& c) { c.min_evidence = -1; }, "min_evidence");
  refused([](ReputationConfig& c) { c.watch_sample_factor = 0.5; }, "watch_sample_factor");
  refused([](ReputationConfig& c) { c.streak_scale = 0; }, "streak_scale");
  refused([](ReputationConfig& c) { c.min_sample_factor = 0; }, "min_sample_factor");
  refused([](ReputationConfig& c) { c.max_entries = 0; }, "max_entries");
}

TEST(ReputationConfigTest, ParsesTheConfigFileSection) {
  auto parsed = ParseReputationConfig(nlohmann::json::parse(R"({
    "probation_tasks": 5, "half_life_s": 3600.5, "suspect_below": 0.7, "good_above": 0.95,
    "quarantine_below": 0.4, "min_evidence": 3, "disagreement_weight": 8, "max_entries": 1000,
    "prior_good": 1, "timeout_weight": 0.25, "min_sample_factor": 0.2
  })"));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->probation_tasks, 5u);
  EXPECT_EQ(parsed->half_life, Ms(3'600'500));
  EXPECT_DOUBLE_EQ(parsed->suspect_below, 0.7);
  EXPECT_DOUBLE_EQ(parsed->good_above, 0.95);
  EXPECT_DOUBLE_EQ(parsed->quarantine_below, 0.4);
  EXPECT_DOUBLE_EQ(parsed->min_evidence, 3);
  EXPECT_DOUBLE_EQ(parsed->disagreement_weight, 8);
  EXPECT_EQ(parsed->max_entries, 1000u);
  EXPECT_DOUBLE_EQ(parsed->prior_good, 1);
  EXPECT_DOUBLE_EQ(parsed->timeout_weight, 0.25);
  EXPECT_DOUBLE_EQ(parsed->min_sample_factor, 0.2);
  EXPECT_DOUBLE_EQ(parsed->error_weight, 1.0);  // untouched default

  auto empty = ParseReputationConfig(nlohmann::json::object());
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->probation_tasks, 20u);
}

TEST(ReputationConfigTest, ParseErrorsNameTheKey) {
  auto error = [](const char* text) {
    auto r = ParseReputationConfig(nlohmann::json::parse(text));
    EXPECT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << text;
    return r.status().message();
  };
  EXPECT_EQ(error(R"({"probation": 5})"), "unknown key 'probation' in reputation");
  EXPECT_NE(error(R"({"suspect_below": "high"})").find("'suspect_below' must be a number"),
            std::string::npos);
  EXPECT_NE(error(R"({"probation_tasks": 2.5})").find("'probation_tasks' must be a whole number"),
            std::string::npos);
  EXPECT_NE(error(R"({"probation_tasks": -1})").find("'probation_tasks'"), std::string::npos);
  EXPECT_NE(error(R"({"probation_tasks": 5000000000})").find("'probation_tasks'"),
            std::string::npos);
  EXPECT_NE(error(R"({"half_life_s": 0})").find("'half_life_s'"), std::string::npos);
  EXPECT_NE(error(R"({"half_life_s": 1e300})").find("'half_life_s'"), std::string::npos);
  EXPECT_NE(error(R"({"max_entries": 0})").find("'max_entries'"), std::string::npos);
  // Validate() runs on the parsed section.
  EXPECT_NE(error(R"({"suspect_below": 0.95})").find("must not exceed 'good_above'"),
            std::string::npos);
  EXPECT_NE(error(R"({"error_weight": -2})").find("'error_weight'"), std::string::npos);
  EXPECT_EQ(error("[1]"), "'reputation' must be an object");
}

}  // namespace
}  // namespace rma::broker
