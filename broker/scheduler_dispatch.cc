// The scheduler's services, queues and dispatch: the service table, the fair queues
// (fair_queue.h) and the accounts' contributions that order them, throttles, worker choice from the
// ready sets, and starting an attempt. See scheduler.h and the routing and queueing sections of
// docs/architecture.md.
#include "broker/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "common/check.h"

namespace rma::broker {

using proto::Command;
using proto::TaskStatus;

namespace {
// How many queued tasks dispatch looks past a head whose requirements no ready worker meets.
constexpr int kRequirementScanWindow = 16;
// How many ready workers are inspected for a task with a GPU-memory requirement.
constexpr int kRequirementScanWorkers = 64;
}  // namespace

// ---------------------------------------------------------------------------------------------------
// Services, queues and dispatch

std::optional<uint32_t> Scheduler::ServiceIndex(const std::string& name) {
  auto it = service_index_.find(name);
  if (it != service_index_.end()) return it->second;
  if (services_in_use_ >= config_.max_services && !ForgetOneIdleService()) return std::nullopt;
  uint32_t index;
  if (!free_service_slots_.empty()) {
    index = free_service_slots_.back();
    free_service_slots_.pop_back();
    services_[index] = Service{};
  } else {
    index = static_cast<uint32_t>(services_.size());
    services_.emplace_back();
  }
  ++services_in_use_;
  Service& svc = services_[index];
  svc.name = name;
  svc.queue = FairQueue(config_.aging);
  for (const CatalogEntry& e : config_.catalog) {
    if (e.service == name) svc.verify = e.verify;
  }
  auto limit = config_.service_limits.find(name);
  if (limit != config_.service_limits.end()) {
    svc.limit = limit->second;
    svc.tokens =
        std::max<double>(1.0, svc.limit.burst > 0 ? svc.limit.burst : svc.limit.rate_per_s);
  }
  service_index_.emplace(name, index);
  return index;
}

std::optional<uint32_t> Scheduler::FindService(std::string_view name) const {
  auto it = service_index_.find(std::string(name));
  if (it == service_index_.end()) return std::nullopt;
  return it->second;
}

bool Scheduler::ForgetOneIdleService() {
  // A service nobody provides, with no task in memory and no timer pending, that is neither
  // generic nor in the catalog: hostile peers cannot fill the table with names for good. A linear
  // scan, only when the table is full.
  for (uint32_t i = 0; i < services_.size(); ++i) {
    Service& svc = services_[i];
    if (!svc.in_use || svc.generic_max_tier > 0 || svc.providers > 0 || svc.tasks_in_memory > 0 ||
        svc.in_flight > 0 || svc.throttle_wakeup_pending) {
      continue;
    }
    const bool in_catalog =
        std::any_of(config_.catalog.begin(), config_.catalog.end(),
                    [&](const CatalogEntry& e) { return e.service == svc.name; });
    if (in_catalog) continue;
    spdlog::debug("forgetting idle service '{}' to make room", svc.name);
    service_index_.erase(svc.name);
    svc = Service{};
    svc.in_use = false;
    free_service_slots_.push_back(i);
    --services_in_use_;
    return true;
  }
  return false;
}

bool Scheduler::HasProvider(uint32_t s) const {
  const Service& svc = services_[s];
  if (svc.active_providers > 0) return true;
  for (uint32_t tier = 1; tier <= svc.generic_max_tier; ++tier) {
    if (tier_live_[tier] > 0) return true;
  }
  return false;
}

bool Scheduler::HasProvider(const Task& t) const {
  if (t.model.empty()) return HasProvider(t.service_index);
  const ModelService* ms = FindModelService(t.model, t.service);
  return ms != nullptr && ms->active_providers > 0;
}

const Scheduler::ModelService* Scheduler::FindModelService(const std::string& model,
                                                           std::string_view service) const {
  auto it = models_.find(model);
  if (it == models_.end()) return nullptr;
  auto ms = it->second.services.find(service);
  return ms == it->second.services.end() ? nullptr : &ms->second;
}

std::vector<std::string> Scheduler::AvailableServices() const {
  std::vector<std::string> names;
  for (uint32_t s = 0; s < services_.size(); ++s) {
    if (services_[s].in_use && HasProvider(s)) names.push_back(services_[s].name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

void Scheduler::Enqueue(Time now, Task& t, bool front) {
  Service& svc = services_[t.service_index];
  RMA_CHECK(t.queue_slot == FairQueue::kNoSlot) << "task " << ToString(t.id) << " queued twice";
  t.status = TaskStatus::kQueued;
  ++t.epoch;
  t.queued_at = now;
  t.queue_slot = svc.queue.Push(now, t.id, t.owner, DonorClass(t.owner), t.priority, front);
  // A replica waits verify_wait at most: then its task's first result goes back unverified.
  const Duration wait = t.verification ? std::min(config_.max_queue_time, config_.verify_wait)
                                       : config_.max_queue_time;
  expiry_.Push({now + wait, t.id, t.epoch});
  NotifyWatchers(now, t);  // before dispatch, which may start it at once (and say so)
  DispatchService(now, t.service_index);
}

void Scheduler::Unqueue(Time now, Task& t) {
  Service& svc = services_[t.service_index];
  if (t.queue_slot != FairQueue::kNoSlot) {
    svc.queue.Remove(now, t.queue_slot);
    t.queue_slot = FairQueue::kNoSlot;
  } else if (t.status == TaskStatus::kQueued || t.status == TaskStatus::kFailed) {
    --svc.delayed;  // waiting for its run_at or a retry's back-off
  }
  ++t.epoch;
}

// ---------------------------------------------------------------------------------------------------
// Donor priority

double Scheduler::Contribution(Time now, const std::string& account) const {
  auto it = donors_.find(account);
  if (it == donors_.end()) return 0;
  const double half_lives =
      ToSecondsF(now - it->second.at) / ToSecondsF(config_.contribution_half_life);
  return it->second.contribution * std::exp2(-std::max(0.0, half_lives));
}

uint32_t Scheduler::DonorClass(const std::string& account) const {
  if (donors_.empty()) return 0;  // the common case: no accounts, or none contributing
  auto it = donors_.find(account);
  return it == donors_.end() ? 0 : it->second.donor_class;
}

void Scheduler::Contribute(Time now, const std::string& account, double weighted_seconds) {
  if (account.empty() || !(weighted_seconds > 0)) return;
  const double contribution = Contribution(now, account) + weighted_seconds;
  Donor& d = donors_[account];
  d.contribution = contribution;
  d.at = now;
  SetDonorClass(account, DonorClassOf(contribution));
}

void Scheduler::SeedContributions(Time now, const std::vector<RecentEarnings>& earned) {
  const auto& multipliers = credits_.config().multipliers;
  for (const RecentEarnings& e : earned) {
    auto m = multipliers.find(e.service);
    const double multiplier = m != multipliers.end() && m->second > 0 ? m->second : 1.0;
    Contribute(now, e.account, e.amount / multiplier);
  }
}

void Scheduler::DecayContributions(Time now) {
  // One pass over the accounts that contributed recently (at most one per worker credential),
  // every sweep: a class falls as its contribution decays.
  for (auto it = donors_.begin(); it != donors_.end();) {
    const double contribution = Contribution(now, it->first);
    const uint32_t donor_class = DonorClassOf(contribution);
    if (donor_class != it->second.donor_class) SetDonorClass(it->first, donor_class);
    if (donor_class == 0 && contribution < 1.0) {
      it = donors_.erase(it);  // decayed to nothing: forgotten
    } else {
      ++it;
    }
  }
}

void Scheduler::SetDonorClass(const std::string& account, uint32_t donor_class) {
  auto it = donors_.find(account);
  if (it == donors_.end() || it->second.donor_class == donor_class) return;
  it->second.donor_class = donor_class;
  // Rare (a class spans a doubling of the contribution): a lookup per service is cheap enough.
  for (Service& svc : services_) {
    if (svc.in_use && !svc.queue.empty()) svc.queue.SetDonorClass(account, donor_class);
  }
}

bool Scheduler::ThrottleAllows(Time now, Service& svc) {
  if (svc.limit.max_concurrency > 0 && svc.in_flight >= svc.limit.max_concurrency) return false;
  if (svc.limit.rate_per_s <= 0) return true;
  double burst =
      std::max<double>(1.0, svc.limit.burst > 0 ? svc.limit.burst : svc.limit.rate_per_s);
  if (svc.tokens_at.time_since_epoch().count() == 0) svc.tokens_at = now;
  svc.tokens = std::min(burst, svc.tokens + ToSecondsF(now - svc.tokens_at) * svc.limit.rate_per_s);
  svc.tokens_at = now;
  if (svc.tokens >= 1.0) return true;
  if (!svc.throttle_wakeup_pending) {
    auto wait =
        Duration(static_cast<int64_t>(std::ceil((1.0 - svc.tokens) / svc.limit.rate_per_s * 1e6)));
    throttled_.Push({now + wait, static_cast<uint32_t>(&svc - services_.data())});
    svc.throttle_wakeup_pending = true;
  }
  return false;
}

int32_t Scheduler::PickWorker(const Service& svc, const Task& t) const {
  const ReadyKey* best = nullptr;
  const ReadyKey* avoided = nullptr;  // the worker that just failed this call: a last resort
  auto consider = [&](const std::set<ReadyKey>& set) {
    int inspected = 0;
    for (const ReadyKey& k : set) {
      if (t.min_tier > 0 && k.tier > t.min_tier) break;  // sets are ordered by tier first
      if (best != nullptr && !(k < *best)) break;
      if (t.min_gpu_memory_gb > 0 && workers_[k.worker].caps.gpu_memory_gb < t.min_gpu_memory_gb) {
        if (++inspected >= kRequirementScanWorkers) break;
        continue;
      }
      if (t.trusted_only && !reputation_.Trusted(workers_[k.worker].reputation_key)) {
        if (++inspected >= kRequirementScanWorkers) break;
        continue;
      }
      if (t.verification && ExcludedFromReplica(*t.verification, workers_[k.worker])) {
        if (++inspected >= kRequirementScanWorkers) break;
        continue;
      }
      if (static_cast<int32_t>(k.worker) == t.avoid_worker) {
        if (avoided == nullptr) avoided = &k;
        if (++inspected >= kRequirementScanWorkers) break;
        continue;
      }
      best = &k;
      break;
    }
  };
  if (!t.model.empty()) {
    // Only the workers whose service lists the model, in the same order as the service's set (a
    // subset of it, kept by UpdateReady): a model task costs one more lookup, never a scan of
    // workers serving other models. Generic workers list no models, so they are not asked.
    const ModelService* ms = FindModelService(t.model, svc.name);
    if (ms != nullptr) consider(ms->ready);
  } else {
    consider(svc.ready);
    for (uint32_t tier = 1; tier <= svc.generic_max_tier; ++tier) consider(tier_ready_[tier]);
  }
  // A replica nobody else is free for may go to a quarantined worker: its answer is checked like
  // any other (it must agree with a result of another account), and its agreements are the
  // evidence an admin restores it on.
  if (best == nullptr && t.verification && t.model.empty() && !t.trusted_only) {
    consider(svc.quarantined_ready);
  }
  if (best == nullptr) best = avoided;
  return best == nullptr ? -1 : static_cast<int32_t>(best->worker);
}

void Scheduler::DispatchService(Time now, uint32_t s) {
  Service& svc = services_[s];
  while (!svc.queue.empty()) {
    bool any_ready = !svc.ready.empty() || !svc.quarantined_ready.empty();
    for (uint32_t tier = 1; tier <= svc.generic_max_tier && !any_ready; ++tier) {
      any_ready = !tier_ready_[tier].empty();
    }
    if (!any_ready) return;
    if (!ThrottleAllows(now, svc)) return;
    // The first task, in fair order, that some ready worker can take.
    Task* task = nullptr;
    int32_t worker = -1;
    auto taken = svc.queue.TakeFirst(now, kRequirementScanWindow, [&](TaskId id) {
      Task* t = Find(id);
      RMA_CHECK(t != nullptr && t->status == TaskStatus::kQueued)
          << "task " << ToString(id) << " in a queue is not queued";
      worker = PickWorker(svc, *t);
      if (worker < 0) return false;
      task = t;
      return true;
    });
    if (!taken) return;
    task->queue_slot = FairQueue::kNoSlot;
    Start(now, *task, static_cast<uint32_t>(worker), task->attempts + 1, /*send=*/true);
  }
}

void Scheduler::DispatchForWorker(Time now, uint32_t index) {
  Worker& w = workers_[index];
  if (!w.alive || w.withdrawn()) return;
  // Explicit services first, then generic work its tier may take; stop as soon as the worker is
  // full.
  for (size_t i = 0; i < w.services.size() && (w.in_ready || w.in_quarantined_ready); ++i) {
    DispatchService(now, w.services[i]);
  }
  for (const GenericService& g : kGenericServices) {
    if (!workers_[index].in_ready || w.tier > g.max_tier) continue;
    auto s = FindService(g.name);
    if (s) DispatchService(now, *s);
  }
}

void Scheduler::Start(Time now, Task& t, uint32_t worker_index, uint32_t attempt, bool send) {
  Worker& w = workers_[worker_index];
  Service& svc = services_[t.service_index];
  t.status = TaskStatus::kRunning;
  t.attempts = std::max(t.attempts, attempt);
  t.running_attempt = attempt;
  t.stream_seq = 0;
  t.progress = -1;
  t.progress_message.clear();
  t.worker = static_cast<int32_t>(worker_index);
  t.worker_id = w.worker_id;
  t.started_at = now;
  OpenAttempt(&t.attempt_log, attempt, w.worker_id, now);
  t.waiters.shrink_to_fit();
  ++t.epoch;
  ++svc.in_flight;
  svc.starts.Add(now);
  if (svc.limit.rate_per_s > 0) svc.tokens -= 1.0;
  Duration wait = now - t.queued_at;
  queue_wait_.Record(wait);
  svc.queue_wait.Record(wait);
  history_.At(now).queue_wait.Record(wait);
  w.running.push_back({t.id, attempt});
  w.lru = ++lru_counter_;
  UpdateReady(w);
  timeouts_.Push({now + Duration(static_cast<int64_t>(t.timeout_ms) * 1000), t.id, attempt});
  Persist(t, WriteKind::kUpdate);
  NotifyWatchers(now, t);
  if (!send) return;

  // Built in place: the hottest message goes out without being moved or copied on its way.
  proto::ToWorkerMessage message(std::in_place_type<proto::TaskAssignment>);
  auto& a = std::get<proto::TaskAssignment>(message);
  a.task_id = t.id;
  a.attempt = attempt;
  a.service = svc.name;
  a.payload = t.payload;  // shared
  a.content_type = t.content_type;
  a.timeout_ms = t.timeout_ms;
  if (t.request) a.request = *t.request;
  SendToWorker(now, w, message);
}

}  // namespace rma::broker
