// The scheduler's verification by replication (issue 17; docs/architecture.md, "Verification"), as
// BOINC's adaptive replication does it. A service with a catalog "verify" rule has a share of its
// accepted results checked: the draw happens when a result arrives (ReputationBook::SampleRate, so
// a worker cannot tell from its assignment whether it is being checked, and a newcomer is checked
// more than a worker with a long streak of agreements). A sampled result is held; the task goes
// back to the front of its queue for a replica, which dispatch gives only to a worker of another
// credential and account (PickWorker). Two results that agree (result_compare.h) complete the task,
// verified; a disagreement brings a third; three different results end it dead. The losing side
// gains a disagreement in its reputation, the agreeing ones an agreement, and only agreeing results
// earn credits. A replica is run after the first result, not beside it: a task keeps one lease at
// a time (the task table's model), and a sampled task takes about twice as long.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "broker/result_compare.h"
#include "broker/scheduler.h"

namespace rma::broker {

using proto::TaskStatus;

std::string_view Scheduler::VerifyOutcomeName(VerifyOutcome outcome) {
  switch (outcome) {
    case VerifyOutcome::kSampled:
      return "sampled";
    case VerifyOutcome::kAgreed:
      return "agreed";
    case VerifyOutcome::kTieBroken:
      return "tie_broken";
    case VerifyOutcome::kNoMajority:
      return "no_majority";
    case VerifyOutcome::kUnverified:
      return "unverified";
    case VerifyOutcome::kCount:
      break;
  }
  return "unknown";
}

bool Scheduler::ExcludedFromReplica(const Verification& v, const Worker& w) {
  return std::any_of(v.excluded.begin(), v.excluded.end(), [&](const Verification::Excluded& e) {
    return e.reputation_key == w.reputation_key || (!e.account.empty() && e.account == w.account);
  });
}

bool Scheduler::HasReplicaProvider(const Task& t, const Verification& v) const {
  const Service& svc = services_[t.service_index];
  for (const Worker& w : workers_) {
    if (!w.in_use || !w.alive || w.withdrawn() || ExcludedFromReplica(v, w)) continue;
    if (!reputation_.Routable(w.reputation_key)) continue;
    if (t.trusted_only && !reputation_.Trusted(w.reputation_key)) continue;
    const bool provides = std::binary_search(w.services.begin(), w.services.end(), t.service_index);
    if (provides || (t.model.empty() && w.tier <= svc.generic_max_tier)) return true;
  }
  return false;
}

bool Scheduler::NeedsVerification(const Task& t, const Worker& w) {
  if (t.verification) return true;
  const Service& svc = services_[t.service_index];
  if (!svc.verify || StreamStarted(t)) return false;
  const double rate = reputation_.SampleRate(w.reputation_key, svc.verify->sample_rate);
  if (!(rate > 0)) return false;
  if (rate < 1 && !std::bernoulli_distribution(rate)(rng_)) return false;
  Verification first;
  first.excluded.push_back({w.reputation_key, w.account});
  return HasReplicaProvider(t, first);
}

void Scheduler::AddReplicaResult(Time now, Task& t, const Worker& w, proto::TaskResult&& result,
                                 Duration ran) {
  if (!t.verification) {
    t.verification = std::make_unique<Verification>();
    ++verifications_[static_cast<size_t>(VerifyOutcome::kSampled)];
  }
  Verification& v = *t.verification;
  v.excluded.push_back({w.reputation_key, w.account});
  Replica r;
  r.attempt = result.attempt;
  r.worker_id = w.worker_id;
  r.reputation_key = w.reputation_key;
  r.account = w.account;
  r.tier = w.tier;
  r.ran = ran;
  r.result = std::move(result.result);
  r.content_type = std::move(result.content_type);
  r.http_status = result.http_status;
  // Held results count against max_unfinished_bytes like payloads: submissions are refused before
  // results held for verification can fill the broker's memory.
  v.held_bytes += r.result.size();
  unfinished_bytes_ += r.result.size();
  v.results.push_back(std::move(r));

  const VerifySpec& spec = *services_[t.service_index].verify;
  const size_t latest = v.results.size() - 1;
  for (size_t i = 0; i < latest; ++i) {
    Result<bool> agree =
        ResultsAgree(v.results[i].result.view(), v.results[latest].result.view(), spec);
    if (!agree.ok()) {
      // Too large or too deep to compare: counted as a disagreement, never trusted.
      spdlog::warn("task {}: results of attempts {} and {} cannot be compared: {}", ToString(t.id),
                   v.results[i].attempt, v.results[latest].attempt, agree.status().ToString());
      continue;
    }
    if (*agree) {
      SettleVerification(now, t, i, latest);
      return;
    }
  }
  if (v.results.size() >= kMaxReplicas) {
    EndVerification(now, t, "three workers returned three different results");
    return;
  }
  spdlog::debug("task {}: result of attempt {} held for verification ({} so far)", ToString(t.id),
                v.results[latest].attempt, v.results.size());
  Enqueue(now, t, /*front=*/true);
}

Scheduler::Verification Scheduler::TakeVerification(Task& t) {
  Verification v = std::move(*t.verification);
  t.verification.reset();
  unfinished_bytes_ -= std::min(unfinished_bytes_, v.held_bytes);
  return v;
}

void Scheduler::SettleVerification(Time now, Task& t, size_t a, size_t b) {
  Verification v = TakeVerification(t);
  const bool tie_broken = v.results.size() > 2;
  ++verifications_[static_cast<size_t>(tie_broken ? VerifyOutcome::kTieBroken
                                                  : VerifyOutcome::kAgreed)];
  for (size_t i = 0; i < v.results.size(); ++i) {
    const Replica& r = v.results[i];
    const bool won = i == a || i == b;
    NoteReplicaReputation(now, r,
                          won ? reputation_.OnAgreement(now, r.reputation_key, r.account)
                              : reputation_.OnDisagreement(now, r.reputation_key, r.account));
    // Only results that passed earn; the submitter pays once, with the first.
    if (won)
      Credit(now, t, r.account, r.worker_id, r.tier, r.attempt, r.ran, /*charge_owner=*/i == a);
  }
  if (tie_broken) {
    spdlog::info("task {}: attempts {} and {} agreed after a disagreement; the other lost",
                 ToString(t.id), v.results[a].attempt, v.results[b].attempt);
  }
  Replica& winner = v.results[a];
  proto::TaskResult result;
  result.attempt = winner.attempt;
  result.result = std::move(winner.result);
  result.content_type = std::move(winner.content_type);
  result.http_status = winner.http_status;
  t.verified = true;
  Complete(now, t, std::move(result));
}

void Scheduler::EndVerification(Time now, Task& t, std::string_view why) {
  Verification v = TakeVerification(t);
  if (v.results.size() == 1) {
    // Nobody else could check it: the result stands as any unsampled one does.
    ++verifications_[static_cast<size_t>(VerifyOutcome::kUnverified)];
    spdlog::info("task {}: returned unverified: {}", ToString(t.id), why);
    Replica& r = v.results.front();
    Credit(now, t, r.account, r.worker_id, r.tier, r.attempt, r.ran);
    proto::TaskResult result;
    result.attempt = r.attempt;
    result.result = std::move(r.result);
    result.content_type = std::move(r.content_type);
    result.http_status = r.http_status;
    Complete(now, t, std::move(result));
    return;
  }
  // Results that disagree and nothing to settle them: no result can be trusted, none earns, and
  // nobody's reputation moves (which of them lied is not known).
  ++verifications_[static_cast<size_t>(VerifyOutcome::kNoMajority)];
  spdlog::warn("task {}: verification failed: {}", ToString(t.id), why);
  t.error = "verification failed: " + std::string(why);
  t.error_code = "verification_failed";
  Finish(now, t, TaskStatus::kDead);
}

void Scheduler::ReplicaFailed(Time now, Task& t) {
  Verification& v = *t.verification;
  // Its worker is not asked again for this task.
  auto it = by_worker_id_.find(t.worker_id);
  if (it != by_worker_id_.end()) {
    const Worker& w = workers_[it->second];
    v.excluded.push_back({w.reputation_key, w.account});
  }
  if (++v.failed_replicas >= kMaxFailedReplicas) {
    EndVerification(now, t, std::to_string(v.failed_replicas) + " replica attempts failed");
    return;
  }
  Enqueue(now, t, /*front=*/true);
}

void Scheduler::NoteReplicaReputation(Time now, const Replica& r,
                                      std::optional<ReputationTransition> change) {
  auto it = by_worker_id_.find(r.worker_id);
  if (it != by_worker_id_.end() && workers_[it->second].reputation_key == r.reputation_key) {
    NoteReputation(now, workers_[it->second], change);
    return;
  }
  // Its worker is gone: the change still counts, and a quarantine is still kept.
  if (!change || change->from == change->to) return;
  ++reputation_transitions_[static_cast<size_t>(change->to)];
  if (change->to == WorkerState::kQuarantined) {
    output_->RecordTrust({r.reputation_key, r.account, "quarantined", change->reason, now});
  }
  spdlog::warn("worker {} (account '{}', offline): reputation {} -> {} ({})", r.worker_id,
               r.account, StateName(change->from), StateName(change->to), change->reason);
}

}  // namespace rma::broker
