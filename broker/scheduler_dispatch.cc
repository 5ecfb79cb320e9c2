// The scheduler's services, queues and dispatch: the service table, per-priority queues with lazy
// deletion, throttles, worker choice from the ready sets, and starting an attempt. See scheduler.h
// and the routing section of docs/architecture.md.
#include "broker/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

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
  t.status = TaskStatus::kQueued;
  ++t.epoch;
  t.queued_at = now;
  auto& q = svc.queue[t.priority];
  if (front) {
    q.push_front({t.id, t.epoch});
  } else {
    q.push_back({t.id, t.epoch});
  }
  ++svc.queued;
  expiry_.Push({now + config_.max_queue_time, t.id, t.epoch});
  NotifyWatchers(t);  // before dispatch, which may start it at once (and say so)
  DispatchService(now, t.service_index);
}

void Scheduler::Unqueue(Task& t) {
  if (t.status == TaskStatus::kQueued) {
    --services_[t.service_index].queued;
  } else if (t.status == TaskStatus::kFailed) {
    --services_[t.service_index].delayed;
  }
  ++t.epoch;
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
  if (best == nullptr) best = avoided;
  return best == nullptr ? -1 : static_cast<int32_t>(best->worker);
}

void Scheduler::DispatchService(Time now, uint32_t s) {
  Service& svc = services_[s];
  while (svc.queued > 0) {
    bool any_ready = !svc.ready.empty();
    for (uint32_t tier = 1; tier <= svc.generic_max_tier && !any_ready; ++tier) {
      any_ready = !tier_ready_[tier].empty();
    }
    if (!any_ready) return;
    if (!ThrottleAllows(now, svc)) return;
    // Find the first live entry, in priority order, that some ready worker can take.
    bool started = false;
    int scanned = 0;
    for (int p = 9; p >= 0 && !started && scanned < kRequirementScanWindow; --p) {
      auto& q = svc.queue[p];
      for (size_t i = 0; i < q.size() && scanned < kRequirementScanWindow;) {
        const QueueEntry e = q[i];
        Task* t = Find(e.id);
        if (t == nullptr || t->epoch != e.epoch || t->status != TaskStatus::kQueued) {
          q.erase(q.begin() +
                  static_cast<std::ptrdiff_t>(i));  // stale: cancelled, expired or moved
          continue;
        }
        ++scanned;
        int32_t w = PickWorker(svc, *t);
        if (w < 0) {
          ++i;
          continue;
        }
        q.erase(q.begin() + static_cast<std::ptrdiff_t>(i));
        --svc.queued;
        Start(now, *t, static_cast<uint32_t>(w), t->attempts + 1, /*send=*/true);
        started = true;
        break;
      }
    }
    if (!started) return;
  }
}

void Scheduler::DispatchForWorker(Time now, uint32_t index) {
  Worker& w = workers_[index];
  if (!w.alive || w.withdrawn()) return;
  // Explicit services first, then generic work its tier may take; stop as soon as the worker is
  // full.
  for (size_t i = 0; i < w.services.size() && w.in_ready; ++i) DispatchService(now, w.services[i]);
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
  t.waiters.shrink_to_fit();
  ++t.epoch;
  ++svc.in_flight;
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
  NotifyWatchers(t);
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
