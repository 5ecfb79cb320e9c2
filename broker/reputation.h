// Reputation (issue 17, "Trust in volunteers' results"): how much the broker trusts each worker
// credential, from what its recent results showed. The scheduler reports outcomes (an accepted
// result, an error, a timeout, an attempt abandoned with its session, and, for a sampled task, the
// verdict of comparing it with another worker's result); the book answers with the credential's
// state, a routing band to order workers by, and how often to verify its results.
//
// A credential is the worker's CURVE public key, or its worker id when it has none: what a
// volunteer cannot shed by reconnecting. Each belongs to an account; AccountSummary rolls them up.
//
// The score. Outcome counts decay exponentially (half-life ReputationConfig::half_life, computed
// lazily from the `now` of the next event or query, no timer), so old mistakes are forgiven and old
// merit expires. Two ratios, each with a prior of `prior_good` good outcomes so a newcomer starts
// near 1 and one outcome never swings it to 0:
//   reliability = (P + accepted) / (P + accepted + w_err*errors + w_to*timeouts + w_ab*abandoned)
//   honesty     = (P + w_ag*agreements) / (P + w_ag*agreements + w_dis*disagreements)
//   score       = min(reliability, honesty)
// Two ratios rather than one good/(good+bad): most accepted results are never verified, so folding
// them into the same ratio as disagreements would let a liar's unchecked results outweigh its
// caught lies (30% lies among 10% sampled is 1 accepted against 0.15 weighted disagreements per
// task: never quarantined). Honesty is judged only among verified results, reliability only among
// attempts.
//
// The states, re-evaluated at every event of the credential:
//   probation    its first `probation_tasks` results (accepted or error): sampled more, routed
//                after good workers; leaves to good, or to suspect if its score is low.
//   good         score >= suspect_below (or back to >= good_above from suspect: hysteresis, so a
//                worker near the line does not flap).
//   suspect      score < suspect_below: still routable, last among routable workers, sampled more.
//   quarantined  a ratio below quarantine_below, with at least `min_evidence` decayed outcomes
//                of that ratio's bad kind behind it (disagreements for honesty; errors, timeouts
//                and abandoned attempts for reliability), so a few early failures never
//                quarantine. Applies in probation too: a liar must be caught before it earns
//                trust. Sticky: no client tasks until an admin acts (the scheduler may still give
//                it verification replicas).
//   banned       only by an admin.
// The evidence is decayed like the rest: five disagreements count as the default's 4.5 if they came
// within about 3.6 hours; older ones need more behind them. A worker whose lies
// come too slowly to gather that evidence within a few half-lives stays suspect (sampled more,
// routed last) rather than quarantined.
//
// Admin overrides (SetTrust, the admin API's trust states): `trusted` (shown as good, routed first,
// eligible for trusted_only work, never auto-quarantined: the admin vouched for it; its outcomes
// are still counted and shown), `normal` (clears any override and starts afresh: counts reset and
// probation again, so a restored worker is not re-quarantined by the counts that quarantined it),
// `quarantined` and `banned`.
//
// States change only at events of the credential: decay alone never moves a state between them, so
// a suspect worker that went quiet becomes good at its next result if time has forgiven it.
//
// Memory is bounded by `max_entries`: when full, the credential heard from least recently is
// forgotten, except quarantined, banned and trusted ones (forgetting them would undo a verdict or
// an admin's word; a forgotten worker starts on probation again, which costs it little). If every
// entry is such a one, a new credential is not recorded (it is treated as on probation) and
// `untracked()` counts the events lost, for a metric.
//
// Plain logic with no I/O and no clock of its own, owned by the scheduler on the broker loop
// thread; not thread-safe. The JSON config section is parsed in reputation_config.h, so that
// scheduler files may include this header (scripts/check_layers.py keeps nlohmann out of them).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/clock.h"
#include "common/status.h"

namespace rma::broker {

// In order of severity for AccountSummary's worst state: good < probation < suspect < quarantined <
// banned.
enum class WorkerState : uint8_t { kGood, kProbation, kSuspect, kQuarantined, kBanned };
inline constexpr size_t kWorkerStates = 5;
// "good", "probation", "suspect", "quarantined", "banned".
std::string_view StateName(WorkerState state);

// What an admin may set (POST /api/admin/workers/{id}/trust {"state": ...}).
enum class Trust : uint8_t { kTrusted, kNormal, kQuarantined, kBanned };
// "trusted", "normal", "quarantined", "banned".
std::string_view TrustName(Trust trust);
Result<Trust> ParseTrust(std::string_view text);

struct ReputationConfig {
  // Results (accepted or error) a new credential returns on probation. 0: none.
  uint32_t probation_tasks = 20;
  Duration half_life = Seconds(24 * 3600);
  // The prior: good outcomes every credential starts with, in both ratios.
  double prior_good = 2.0;
  // Weights (see the header paragraph). A disagreement weighs most: it is the one outcome that says
  // the worker returned a wrong result rather than none. A timeout or a lost session may be the
  // network's fault, so they weigh less than an error.
  double agreement_weight = 1.0;
  double error_weight = 1.0;
  double timeout_weight = 0.5;
  double abandoned_weight = 0.5;
  double disagreement_weight = 5.0;
  // Score thresholds: quarantine_below <= suspect_below <= good_above, all in [0, 1].
  double suspect_below = 0.8;
  double good_above = 0.9;
  double quarantine_below = 0.5;
  // Decayed outcomes of the failing kind needed before a low ratio quarantines. 4.5: five of them
  // within the last few hours (decayed, five count a little under five: 4.5 after 3.6 hours at the
  // default half-life), so a fifth failure quarantines in real time as it does in a test.
  double min_evidence = 4.5;
  // Sampling (SampleRate): probation and suspect credentials are verified `watch_sample_factor`
  // times as often as the service's base rate; a good one at the base rate until its agreement
  // streak passes streak_scale, then in inverse proportion to it (streak_scale / streak), never
  // below min_sample_factor of the base.
  double watch_sample_factor = 5.0;
  double streak_scale = 10.0;
  double min_sample_factor = 0.1;
  size_t max_entries = 100000;

  [[nodiscard]] Status Validate() const;
};

// Outcome counts, decayed to the time they were read.
struct OutcomeCounts {
  double accepted = 0;
  double errors = 0;
  double timeouts = 0;
  double abandoned = 0;
  double agreements = 0;
  double disagreements = 0;
};

// A state change, for the caller to log and count.
struct ReputationTransition {
  std::string key;
  std::string account;
  WorkerState from = WorkerState::kProbation;
  WorkerState to = WorkerState::kProbation;
  std::string reason;  // "honesty 0.31 < 0.5 with 5.0 disagreements", "admin: trusted", ...
};

// One credential, for the admin API.
struct ReputationSnapshot {
  std::string key;
  std::string account;
  WorkerState state = WorkerState::kProbation;
  bool trusted = false;
  double score = 1;
  double reliability = 1;
  double honesty = 1;
  OutcomeCounts counts;  // decayed to the `now` asked for
  uint64_t tasks = 0;    // results returned since the last fresh start, undecayed
  uint32_t streak = 0;   // consecutive agreements
  Time since;            // when it entered `state`
  Time last_seen;        // its last event
};

struct AccountReputation {
  std::string account;
  size_t credentials = 0;
  size_t trusted = 0;
  OutcomeCounts counts;  // summed over its credentials, decayed
  // The most severe state among its credentials (kGood when it has none).
  WorkerState worst = WorkerState::kGood;
  std::array<size_t, kWorkerStates> per_state{};  // indexed by WorkerState
};

class ReputationBook {
 public:
  // `config` must be valid (Validate(); ParseReputationConfig checks it).
  explicit ReputationBook(ReputationConfig config = {});

  const ReputationConfig& config() const { return config_; }

  // Outcomes of `key`'s work; `account` is the credential's account ("" for none) and is updated if
  // it changed. Each returns the state change it caused, if any. OnAccepted: a result the broker
  // accepted (a client task or a verification replica); OnAbandoned: an attempt lost with the
  // worker's session; OnAgreement / OnDisagreement: a sampled result compared with another worker's
  // (a disagreement reported for the worker found wrong, after a tie-break when there was one).
  std::optional<ReputationTransition> OnAccepted(Time now, std::string_view key,
                                                 std::string_view account);
  std::optional<ReputationTransition> OnError(Time now, std::string_view key,
                                              std::string_view account);
  std::optional<ReputationTransition> OnTimeout(Time now, std::string_view key,
                                                std::string_view account);
  std::optional<ReputationTransition> OnAbandoned(Time now, std::string_view key,
                                                  std::string_view account);
  std::optional<ReputationTransition> OnAgreement(Time now, std::string_view key,
                                                  std::string_view account);
  std::optional<ReputationTransition> OnDisagreement(Time now, std::string_view key,
                                                     std::string_view account);

  // An admin's word. Always returns the transition (from may equal to: the act is still logged). A
  // credential not seen yet is recorded, with no account until its first event. kResourceExhausted
  // when the book is full of entries it may not forget.
  Result<ReputationTransition> SetTrust(Time now, std::string_view key, Trust trust);

  // A credential never seen (or forgotten) is on probation, or good when probation_tasks is 0.
  WorkerState State(std::string_view key) const;
  bool Trusted(std::string_view key) const;
  // nullopt when the book does not know the credential.
  std::optional<ReputationSnapshot> Snapshot(Time now, std::string_view key) const;
  AccountReputation AccountSummary(Time now, std::string_view account) const;

  // The order to offer client tasks in, lower first: trusted 0, good 1, probation 2, suspect 3;
  // nullopt for quarantined and banned credentials, which get no client tasks.
  std::optional<uint32_t> RoutingBand(std::string_view key) const;
  bool Routable(std::string_view key) const { return RoutingBand(key).has_value(); }

  // The probability to verify a result of `key` for a service sampled at `base_rate` (clamped to
  // [0, 1]; 0 stays 0). BOINC's adaptive replication: scrutiny where trust is not yet earned, less
  // as a worker keeps agreeing.
  //   probation, suspect, unknown:  min(1, watch_sample_factor * base)
  //   good:                          base * max(min_sample_factor, min(1, scale / streak))
  //   trusted:                       base * min_sample_factor (an admin vouched; a small sample
  //                                  still shows if a trusted machine goes wrong)
  //   quarantined, banned:           1 (it runs only replicas: check all it returns)
  // The first `scale` agreements earn no discount: a liar lying on 30% of its results passes 5
  // checks in a row by luck 17% of the time, 10 only 3% of the time. With the defaults and a base
  // of 0.1, nearly every worker lying on 30% of its results is quarantined within 200 of its tasks,
  // and an honest one is verified on a few % of 2000 (reputation_test's simulations).
  double SampleRate(std::string_view key, double base_rate) const;

  size_t size() const { return entries_.size(); }
  // Events for credentials the book could not record (full of entries it may not forget).
  uint64_t untracked() const { return untracked_; }

 private:
  struct Entry {
    std::string account;
    WorkerState state = WorkerState::kProbation;
    bool trusted = false;
    OutcomeCounts counts;
    Time decayed_at;  // when `counts` were last decayed to
    uint64_t tasks = 0;
    uint32_t streak = 0;
    Time since;
    Time last_seen;
    // Position in lru_ while evictable (not pinned).
    std::list<const std::string*>::iterator lru;
    bool in_lru = false;
  };
  enum class Outcome : uint8_t {
    kAccepted,
    kError,
    kTimeout,
    kAbandoned,
    kAgreement,
    kDisagreement
  };
  struct Ratios {
    double reliability = 1;
    double honesty = 1;
    double score() const { return reliability < honesty ? reliability : honesty; }
  };

  WorkerState InitialState() const;
  std::optional<ReputationTransition> Record(Time now, std::string_view key,
                                             std::string_view account, Outcome outcome);
  using Slot = std::pair<const std::string, Entry>;
  // The entry for `key`, created if new (evicting if full); nullptr if it cannot be recorded.
  Slot* Touch(Time now, std::string_view key);
  void SetAccount(Slot& slot, std::string_view account);
  // The state `e`'s counts call for; `reason` says why when it differs from e.state.
  WorkerState Evaluate(const Entry& e, std::string* reason) const;
  Ratios RatiosOf(const OutcomeCounts& c) const;
  OutcomeCounts DecayedCounts(const Entry& e, Time now) const;
  static bool Pinned(const Entry& e);
  // Keeps `e` in lru_ exactly when it may be forgotten.
  void UpdatePin(Slot& slot);

  // Looks a std::string key up by string_view without a copy.
  struct KeyHash {
    using is_transparent = void;
    size_t operator()(std::string_view key) const { return std::hash<std::string_view>{}(key); }
  };

  ReputationConfig config_;
  std::unordered_map<std::string, Entry, KeyHash, std::equal_to<>> entries_;
  // Evictable credentials, least recently heard from first (keys point into entries_, whose nodes
  // do not move).
  std::list<const std::string*> lru_;
  std::map<std::string, std::set<std::string, std::less<>>, std::less<>> accounts_;
  uint64_t untracked_ = 0;
};

}  // namespace rma::broker
