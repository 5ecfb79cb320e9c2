// Reputation: states, decay, sampling and the bounded table of credentials (reputation.h).
#include "broker/reputation.h"

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>

namespace rma::broker {

namespace {

// printf into a std::string, for transition reasons (the names are unusual on purpose: the
// scheduler library is one unity translation unit, where anonymous namespaces are shared).
std::string ReputationPrintf(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string ReputationPrintf(const char* format, ...) {
  char text[160];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  return text;
}

Status ReputationFraction(const char* key, double value) {
  if (!std::isfinite(value) || value < 0 || value > 1) {
    return Status::InvalidArgument(
        ReputationPrintf("reputation '%s' must be in [0, 1], not %g", key, value));
  }
  return Status::Ok();
}

Status ReputationNonNegative(const char* key, double value) {
  if (!std::isfinite(value) || value < 0) {
    return Status::InvalidArgument(
        ReputationPrintf("reputation '%s' must be a finite number >= 0, not %g", key, value));
  }
  return Status::Ok();
}

void AddCounts(const OutcomeCounts& from, OutcomeCounts* to) {
  to->accepted += from.accepted;
  to->errors += from.errors;
  to->timeouts += from.timeouts;
  to->abandoned += from.abandoned;
  to->agreements += from.agreements;
  to->disagreements += from.disagreements;
}

void ScaleCounts(double factor, OutcomeCounts* c) {
  c->accepted *= factor;
  c->errors *= factor;
  c->timeouts *= factor;
  c->abandoned *= factor;
  c->agreements *= factor;
  c->disagreements *= factor;
}

double Failures(const OutcomeCounts& c) { return c.errors + c.timeouts + c.abandoned; }

}  // namespace

std::string_view StateName(WorkerState state) {
  switch (state) {
    case WorkerState::kGood:
      return "good";
    case WorkerState::kProbation:
      return "probation";
    case WorkerState::kSuspect:
      return "suspect";
    case WorkerState::kQuarantined:
      return "quarantined";
    case WorkerState::kBanned:
      return "banned";
  }
  return "probation";
}

std::string_view TrustName(Trust trust) {
  switch (trust) {
    case Trust::kTrusted:
      return "trusted";
    case Trust::kNormal:
      return "normal";
    case Trust::kQuarantined:
      return "quarantined";
    case Trust::kBanned:
      return "banned";
  }
  return "normal";
}

Result<Trust> ParseTrust(std::string_view text) {
  for (Trust t : {Trust::kTrusted, Trust::kNormal, Trust::kQuarantined, Trust::kBanned}) {
    if (text == TrustName(t)) return t;
  }
  return Status::InvalidArgument(
      "trust state must be trusted, normal, quarantined or banned, not '" + std::string(text) +
      "'");
}

Status ReputationConfig::Validate() const {
  if (half_life < Seconds(1)) {
    return Status::InvalidArgument("reputation 'half_life_s' must be at least 1 second");
  }
  if (!std::isfinite(prior_good) || prior_good <= 0) {
    // Without a prior a credential with no outcomes has the score 0/0.
    return Status::InvalidArgument("reputation 'prior_good' must be a finite number > 0");
  }
  RMA_RETURN_IF_ERROR(ReputationNonNegative("agreement_weight", agreement_weight));
  RMA_RETURN_IF_ERROR(ReputationNonNegative("error_weight", error_weight));
  RMA_RETURN_IF_ERROR(ReputationNonNegative("timeout_weight", timeout_weight));
  RMA_RETURN_IF_ERROR(ReputationNonNegative("abandoned_weight", abandoned_weight));
  RMA_RETURN_IF_ERROR(ReputationNonNegative("disagreement_weight", disagreement_weight));
  RMA_RETURN_IF_ERROR(ReputationFraction("suspect_below", suspect_below));
  RMA_RETURN_IF_ERROR(ReputationFraction("good_above", good_above));
  RMA_RETURN_IF_ERROR(ReputationFraction("quarantine_below", quarantine_below));
  if (quarantine_below > suspect_below) {
    return Status::InvalidArgument(
        ReputationPrintf("reputation 'quarantine_below' (%g) must not exceed 'suspect_below' (%g)",
                         quarantine_below, suspect_below));
  }
  if (suspect_below > good_above) {
    // The hysteresis band: a suspect must climb back above good_above to be good again.
    return Status::InvalidArgument(
        ReputationPrintf("reputation 'suspect_below' (%g) must not exceed 'good_above' (%g)",
                         suspect_below, good_above));
  }
  RMA_RETURN_IF_ERROR(ReputationNonNegative("min_evidence", min_evidence));
  if (!std::isfinite(watch_sample_factor) || watch_sample_factor < 1) {
    return Status::InvalidArgument("reputation 'watch_sample_factor' must be a finite number >= 1");
  }
  if (!std::isfinite(streak_scale) || streak_scale <= 0) {
    return Status::InvalidArgument("reputation 'streak_scale' must be a finite number > 0");
  }
  if (!std::isfinite(min_sample_factor) || min_sample_factor <= 0 || min_sample_factor > 1) {
    return Status::InvalidArgument("reputation 'min_sample_factor' must be in (0, 1]");
  }
  if (max_entries < 1) {
    return Status::InvalidArgument("reputation 'max_entries' must be at least 1");
  }
  return Status::Ok();
}

ReputationBook::ReputationBook(ReputationConfig config) : config_(config) {
  // Settings come through ParseReputationConfig or the defaults; an invalid set here is a bug (a
  // zero prior would make every score 0/0).
  Status valid = config_.Validate();
  RMA_CHECK(valid.ok()) << valid.ToString();
}

WorkerState ReputationBook::InitialState() const {
  return config_.probation_tasks > 0 ? WorkerState::kProbation : WorkerState::kGood;
}

bool ReputationBook::Pinned(const Entry& e) {
  return e.trusted || e.state == WorkerState::kQuarantined || e.state == WorkerState::kBanned;
}

void ReputationBook::UpdatePin(Slot& slot) {
  Entry& e = slot.second;
  if (Pinned(e)) {
    if (e.in_lru) lru_.erase(e.lru);
    e.in_lru = false;
  } else if (!e.in_lru) {
    e.lru = lru_.insert(lru_.end(), &slot.first);
    e.in_lru = true;
  }
}

ReputationBook::Slot* ReputationBook::Touch(Time now, std::string_view key) {
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    Entry& e = it->second;
    if (e.in_lru) lru_.splice(lru_.end(), lru_, e.lru);
    e.last_seen = std::max(e.last_seen, now);
    return &*it;
  }
  if (entries_.size() >= config_.max_entries) {
    if (lru_.empty()) return nullptr;
    // The least recently heard-from credential that may be forgotten.
    const std::string* victim = lru_.front();
    lru_.pop_front();
    auto v = entries_.find(*victim);
    auto a = accounts_.find(v->second.account);
    if (a != accounts_.end()) {
      a->second.erase(*victim);
      if (a->second.empty()) accounts_.erase(a);
    }
    entries_.erase(v);
  }
  auto slot = entries_.try_emplace(std::string(key)).first;
  Entry& e = slot->second;
  e.state = InitialState();
  e.decayed_at = now;
  e.since = now;
  e.last_seen = now;
  accounts_[e.account].insert(slot->first);
  UpdatePin(*slot);
  return &*slot;
}

void ReputationBook::SetAccount(Slot& slot, std::string_view account) {
  Entry& e = slot.second;
  if (e.account == account) return;
  auto a = accounts_.find(e.account);
  if (a != accounts_.end()) {
    a->second.erase(slot.first);
    if (a->second.empty()) accounts_.erase(a);
  }
  e.account = std::string(account);
  accounts_[e.account].insert(slot.first);
}

OutcomeCounts ReputationBook::DecayedCounts(const Entry& e, Time now) const {
  OutcomeCounts c = e.counts;
  // A clock that went back decays nothing (and never inflates).
  if (now > e.decayed_at) {
    double halves = ToSecondsF(now - e.decayed_at) / ToSecondsF(config_.half_life);
    ScaleCounts(std::exp2(-halves), &c);
  }
  return c;
}

ReputationBook::Ratios ReputationBook::RatiosOf(const OutcomeCounts& c) const {
  const double p = config_.prior_good;
  const double good = p + c.accepted;
  const double bad = config_.error_weight * c.errors + config_.timeout_weight * c.timeouts +
                     config_.abandoned_weight * c.abandoned;
  const double agreed = p + config_.agreement_weight * c.agreements;
  const double lied = config_.disagreement_weight * c.disagreements;
  return {good / (good + bad), agreed / (agreed + lied)};
}

WorkerState ReputationBook::Evaluate(const Entry& e, std::string* reason) const {
  if (e.state == WorkerState::kQuarantined || e.state == WorkerState::kBanned) return e.state;
  if (e.trusted) return WorkerState::kGood;
  const Ratios r = RatiosOf(e.counts);
  const double q = config_.quarantine_below;
  if (r.honesty < q && e.counts.disagreements >= config_.min_evidence) {
    *reason = ReputationPrintf("honesty %.3f < %.3f with %.1f disagreements", r.honesty, q,
                               e.counts.disagreements);
    return WorkerState::kQuarantined;
  }
  if (r.reliability < q && Failures(e.counts) >= config_.min_evidence) {
    *reason = ReputationPrintf("reliability %.3f < %.3f with %.1f failed attempts", r.reliability,
                               q, Failures(e.counts));
    return WorkerState::kQuarantined;
  }
  if (e.tasks < config_.probation_tasks) return WorkerState::kProbation;
  const double score = r.score();
  switch (e.state) {
    case WorkerState::kProbation:
      if (score < config_.suspect_below) {
        *reason = ReputationPrintf("probation over after %llu results, score %.3f < %.3f",
                                   static_cast<unsigned long long>(e.tasks), score,
                                   config_.suspect_below);
        return WorkerState::kSuspect;
      }
      *reason = ReputationPrintf("probation over after %llu results, score %.3f",
                                 static_cast<unsigned long long>(e.tasks), score);
      return WorkerState::kGood;
    case WorkerState::kGood:
      if (score < config_.suspect_below) {
        *reason = ReputationPrintf("score %.3f < %.3f", score, config_.suspect_below);
        return WorkerState::kSuspect;
      }
      return WorkerState::kGood;
    case WorkerState::kSuspect:
      if (score >= config_.good_above) {
        *reason = ReputationPrintf("score %.3f >= %.3f", score, config_.good_above);
        return WorkerState::kGood;
      }
      return WorkerState::kSuspect;
    case WorkerState::kQuarantined:
    case WorkerState::kBanned:
      break;
  }
  return e.state;
}

std::optional<ReputationTransition> ReputationBook::Record(Time now, std::string_view key,
                                                           std::string_view account,
                                                           Outcome outcome) {
  Slot* slot = Touch(now, key);
  if (slot == nullptr) {
    ++untracked_;
    return std::nullopt;
  }
  SetAccount(*slot, account);
  Entry* e = &slot->second;
  e->counts = DecayedCounts(*e, now);
  e->decayed_at = std::max(e->decayed_at, now);
  OutcomeCounts& c = e->counts;
  switch (outcome) {
    case Outcome::kAccepted:
      c.accepted += 1;
      ++e->tasks;
      break;
    case Outcome::kError:
      c.errors += 1;
      ++e->tasks;
      break;
    case Outcome::kTimeout:
      c.timeouts += 1;
      break;
    case Outcome::kAbandoned:
      c.abandoned += 1;
      break;
    case Outcome::kAgreement:
      c.agreements += 1;
      ++e->streak;
      break;
    case Outcome::kDisagreement:
      c.disagreements += 1;
      e->streak = 0;
      break;
  }
  std::string reason;
  const WorkerState next = Evaluate(*e, &reason);
  if (next == e->state) return std::nullopt;
  ReputationTransition t{std::string(key), e->account, e->state, next, std::move(reason)};
  e->state = next;
  e->since = now;
  UpdatePin(*slot);
  return t;
}

std::optional<ReputationTransition> ReputationBook::OnAccepted(Time now, std::string_view key,
                                                               std::string_view account) {
  return Record(now, key, account, Outcome::kAccepted);
}
std::optional<ReputationTransition> ReputationBook::OnError(Time now, std::string_view key,
                                                            std::string_view account) {
  return Record(now, key, account, Outcome::kError);
}
std::optional<ReputationTransition> ReputationBook::OnTimeout(Time now, std::string_view key,
                                                              std::string_view account) {
  return Record(now, key, account, Outcome::kTimeout);
}
std::optional<ReputationTransition> ReputationBook::OnAbandoned(Time now, std::string_view key,
                                                                std::string_view account) {
  return Record(now, key, account, Outcome::kAbandoned);
}
std::optional<ReputationTransition> ReputationBook::OnAgreement(Time now, std::string_view key,
                                                                std::string_view account) {
  return Record(now, key, account, Outcome::kAgreement);
}
std::optional<ReputationTransition> ReputationBook::OnDisagreement(Time now, std::string_view key,
                                                                   std::string_view account) {
  return Record(now, key, account, Outcome::kDisagreement);
}

Result<ReputationTransition> ReputationBook::SetTrust(Time now, std::string_view key, Trust trust) {
  Slot* slot = Touch(now, key);
  if (slot == nullptr) {
    return Status::ResourceExhausted(
        "the reputation table is full of quarantined, banned and trusted credentials");
  }
  Entry* e = &slot->second;
  const WorkerState from = e->state;
  switch (trust) {
    case Trust::kTrusted:
      // The admin's word lifts a quarantine or a ban; the counts stay, for the record.
      e->trusted = true;
      e->state = WorkerState::kGood;
      break;
    case Trust::kNormal:
      e->trusted = false;
      e->counts = {};
      e->decayed_at = now;
      e->tasks = 0;
      e->streak = 0;
      e->state = InitialState();
      break;
    case Trust::kQuarantined:
      e->trusted = false;
      e->state = WorkerState::kQuarantined;
      break;
    case Trust::kBanned:
      e->trusted = false;
      e->state = WorkerState::kBanned;
      break;
  }
  // A fresh start is a new stay even in the same state.
  if (e->state != from || trust == Trust::kNormal) e->since = now;
  UpdatePin(*slot);
  return ReputationTransition{std::string(key), e->account, from, e->state,
                              "admin: " + std::string(TrustName(trust))};
}

WorkerState ReputationBook::State(std::string_view key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? InitialState() : it->second.state;
}

bool ReputationBook::Trusted(std::string_view key) const {
  auto it = entries_.find(key);
  return it != entries_.end() && it->second.trusted;
}

std::optional<ReputationSnapshot> ReputationBook::Snapshot(Time now, std::string_view key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  const Entry& e = it->second;
  ReputationSnapshot s;
  s.key = it->first;
  s.account = e.account;
  s.state = e.state;
  s.trusted = e.trusted;
  s.counts = DecayedCounts(e, now);
  const Ratios r = RatiosOf(s.counts);
  s.reliability = r.reliability;
  s.honesty = r.honesty;
  s.score = r.score();
  s.tasks = e.tasks;
  s.streak = e.streak;
  s.since = e.since;
  s.last_seen = e.last_seen;
  return s;
}

AccountReputation ReputationBook::AccountSummary(Time now, std::string_view account) const {
  AccountReputation summary;
  summary.account = std::string(account);
  auto a = accounts_.find(account);
  if (a == accounts_.end()) return summary;
  for (const std::string& key : a->second) {
    const Entry& e = entries_.find(key)->second;
    ++summary.credentials;
    if (e.trusted) ++summary.trusted;
    ++summary.per_state[static_cast<size_t>(e.state)];
    summary.worst = std::max(summary.worst, e.state);
    AddCounts(DecayedCounts(e, now), &summary.counts);
  }
  return summary;
}

std::optional<uint32_t> ReputationBook::RoutingBand(std::string_view key) const {
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.trusted) return 0;
  switch (it == entries_.end() ? InitialState() : it->second.state) {
    case WorkerState::kGood:
      return 1;
    case WorkerState::kProbation:
      return 2;
    case WorkerState::kSuspect:
      return 3;
    case WorkerState::kQuarantined:
    case WorkerState::kBanned:
      return std::nullopt;
  }
  return std::nullopt;
}

double ReputationBook::SampleRate(std::string_view key, double base_rate) const {
  if (!(base_rate > 0)) return 0;  // also NaN
  const double base = std::min(base_rate, 1.0);
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.trusted) return base * config_.min_sample_factor;
  const WorkerState state = it == entries_.end() ? InitialState() : it->second.state;
  switch (state) {
    case WorkerState::kProbation:
    case WorkerState::kSuspect:
      return std::min(1.0, config_.watch_sample_factor * base);
    case WorkerState::kGood: {
      const double streak = it == entries_.end() ? 0 : it->second.streak;
      const double factor = streak <= config_.streak_scale ? 1.0 : config_.streak_scale / streak;
      return base * std::max(config_.min_sample_factor, factor);
    }
    case WorkerState::kQuarantined:
    case WorkerState::kBanned:
      return 1;
  }
  return base;
}

}  // namespace rma::broker
