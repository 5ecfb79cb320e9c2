// The scheduler: construction, time (timers, the liveness sweep), restore after a restart and the
// read-only queries. The rules are split by concern: scheduler_workers.cc (registry and liveness),
// scheduler_dispatch.cc (services, queues, routing), scheduler_clients.cc (submit, get, cancel,
// list), scheduler_tasks.cc (results and the life cycle). See scheduler.h for the model and
// docs/architecture.md for the life cycle.
#include "broker/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace rma::broker {

using proto::Command;
using proto::TaskStatus;

uint32_t AssignTier(const proto::Capabilities& caps, const TierThresholds& thresholds) {
  if (caps.worker_type == "storage") return 3;
  if (caps.has_gpu && caps.worker_type != "cpu") return 1;
  if (caps.cpu_cores >= thresholds.cpu_min_cores && caps.ram_gb >= thresholds.cpu_min_ram_gb)
    return 2;
  return 3;
}

std::string_view Scheduler::RefusalName(Refusal r) {
  switch (r) {
    case Refusal::kNotLeaseHolder:
      return "not_lease_holder";
    case Refusal::kUnregistered:
      return "unregistered";
    case Refusal::kWorkerIdInUse:
      return "worker_id_in_use";
    case Refusal::kForeignAttempt:
      return "foreign_attempt";
    case Refusal::kTooManyServices:
      return "too_many_services";
    case Refusal::kQueueFull:
      return "queue_full";
    case Refusal::kTooManyWaiters:
      return "too_many_waiters";
    case Refusal::kStreamOutOfOrder:
      return "stream_out_of_order";
    case Refusal::kBanned:
      return "banned";
    case Refusal::kCount:
      break;
  }
  return "unknown";
}

Scheduler::Scheduler(BrokerConfig config, SchedulerOutput* output, bool durable, uint64_t seed,
                     std::function<uint64_t()> task_ids)
    : config_(std::move(config)),
      output_(output),
      durable_(durable),
      credits_(config_.credits, config_.tier_weights),
      reputation_(config_.reputation),
      rng_(seed),
      task_ids_(std::move(task_ids)),
      delayed_([this](const TimedEntry& e) { return EpochLive(e); }),
      expiry_([this](const TimedEntry& e) { return EpochLive(e); }),
      timeouts_([this](const TimedEntry& e) {
        const Task* t = FindTask(e.id);
        return t != nullptr && t->status == TaskStatus::kRunning && t->running_attempt == e.tag;
      }),
      // O(1): a waiter is live while the index holds its id.
      waits_([this](const WaitEntry& e) { return pending_waits_.count(e.waiter) > 0; }) {
  for (const CatalogEntry& e : config_.catalog) {
    if (e.trusted_only) trusted_only_services_.insert(e.service);
  }
  for (const GenericService& g : kGenericServices) {
    services_[*ServiceIndex(std::string(g.name))].generic_max_tier = g.max_tier;
  }
  for (const CatalogEntry& e : config_.catalog) (void)ServiceIndex(e.service);
}

TaskId Scheduler::DrawTaskId() {
  for (;;) {
    const uint64_t v = task_ids_ ? task_ids_() : rng_();
    if (v != 0) return TaskId(v);
  }
}

// ---------------------------------------------------------------------------------------------------
// Time

void Scheduler::RollDay(Time now) {
  Time day = StartOfUtcDay(now);
  if (day != today_start_) {
    today_start_ = day;
    today_ = Counters{};
  }
}

Time Scheduler::NextWakeup() const {
  Time next = next_sweep_;
  if (!delayed_.empty()) next = std::min(next, delayed_.top().at);
  if (!expiry_.empty()) next = std::min(next, expiry_.top().at);
  if (!timeouts_.empty()) next = std::min(next, timeouts_.top().at);
  if (!waits_.empty()) next = std::min(next, waits_.top().at);
  if (!throttled_.empty()) next = std::min(next, throttled_.top().at);
  return next;
}

void Scheduler::OnTick(Time now) {
  RollDay(now);
  while (!delayed_.empty() && delayed_.top().at <= now) {
    TimedEntry e = delayed_.top();
    delayed_.Pop();
    Task* t = Find(e.id);
    if (t == nullptr || t->epoch != e.tag) continue;
    if (t->status != TaskStatus::kQueued && t->status != TaskStatus::kFailed) continue;
    --services_[t->service_index].delayed;
    Enqueue(now, *t, /*front=*/false);
  }
  while (!timeouts_.empty() && timeouts_.top().at <= now) {
    TimedEntry e = timeouts_.top();
    timeouts_.Pop();
    Task* t = Find(e.id);
    if (t == nullptr || t->status != TaskStatus::kRunning || t->running_attempt != e.tag) continue;
    std::string error = "attempt " + std::to_string(e.tag) + " timed out after " +
                        std::to_string(t->timeout_ms) + " ms";
    if (t->worker >= 0) {
      Worker& w = workers_[static_cast<uint32_t>(t->worker)];
      NoteReputation(now, w, reputation_.OnTimeout(now, w.reputation_key, w.account));
    }
    CancelRunning(now, *t, "timeout");
    FailAttempt(now, *t, std::move(error), "timeout", /*retryable=*/true);
  }
  while (!expiry_.empty() && expiry_.top().at <= now) {
    TimedEntry e = expiry_.top();
    expiry_.Pop();
    Task* t = Find(e.id);
    if (t == nullptr || t->epoch != e.tag || t->status != TaskStatus::kQueued) continue;
    Unqueue(now, *t);
    if (t->verification) {
      EndVerification(now, *t,
                      "no worker of another account ran its replica within " +
                          std::to_string(ToMs(config_.verify_wait)) + " ms");
      continue;
    }
    t->error = "waited longer than " + std::to_string(ToMs(config_.max_queue_time) / 1000) +
               " s without being started" + (HasProvider(*t) ? "" : " (no provider)");
    t->error_code = "queue_timeout";
    Finish(now, *t, TaskStatus::kExpired);
  }
  while (!waits_.empty() && waits_.top().at <= now) {
    WaitEntry e = waits_.top();
    waits_.Pop();
    auto slot = pending_waits_.find(e.waiter);
    if (slot == pending_waits_.end()) continue;
    Task* t = Find(slot->second.task);
    if (t == nullptr) {
      pending_waits_.erase(slot);
      continue;
    }
    const Waiter w = t->waiters[slot->second.index];
    RemoveWaiter(*t, slot->second.index);
    ReplyTask(now, w.client, w.ref, *t, w.after);
    if (w.sync && !proto::IsTerminal(t->status)) {
      // Nobody waits for this call any more: stop it rather than run it for nothing.
      if (t->status == TaskStatus::kRunning) {
        CancelRunning(now, *t, "caller gave up");
      } else {
        Unqueue(now, *t);
      }
      t->error = "the caller stopped waiting";
      t->error_code = "timeout";
      Finish(now, *t, TaskStatus::kCancelled);
    }
  }
  while (!throttled_.empty() && throttled_.top().at <= now) {
    uint32_t s = throttled_.top().service;
    throttled_.Pop();
    services_[s].throttle_wakeup_pending = false;
    DispatchService(now, s);
  }
  if (now >= next_sweep_) {
    Sweep(now);
    DecayContributions(now);
    next_sweep_ = now + std::max<Duration>(config_.heartbeat_interval / 4, Ms(1));
  }
  MaybeEvict(now);
}

void Scheduler::Sweep(Time now) {
  const Duration dead_after = config_.heartbeat_interval * config_.liveness;
  for (uint32_t i = 0; i < workers_.size(); ++i) {
    Worker& w = workers_[i];
    if (!w.in_use) continue;
    if (w.alive) {
      if (now - w.last_heard > dead_after) {
        LoseWorker(now, i, "missed " + std::to_string(config_.liveness) + " heartbeats");
      } else if (now - w.last_sent >= config_.heartbeat_interval) {
        SendToWorker(now, w, proto::Bodyless{Command::kHeartbeat});
      }
      if (w.alive && credits_.pays_uptime()) AccrueUptime(now, w);
    } else if (now - w.offline_since > config_.offline_retention) {
      ForgetWorker(i);
    }
  }
}

void Scheduler::AccrueUptime(Time now, Worker& w) {
  if (w.account.empty()) return;
  const Time since = std::max(w.uptime_seen, w.registered_at);
  w.uptime_seen = now;
  // Healthy: it offers at least one service (a worker drops the ones whose backend fails its
  // health probe) and an admin has not drained it.
  if (w.services.empty() || w.withdrawn() || now <= since) return;
  // A sweep that came late (a stalled loop) pays no more than a few heartbeats of time.
  w.unpaid_uptime += std::min(now - since, config_.heartbeat_interval * 4);
  const Duration period = credits_.config().uptime_period;
  std::vector<LedgerEntry> entries;
  while (w.unpaid_uptime >= period) {
    w.unpaid_uptime -= period;
    if (auto e = credits_.OnUptime(now, w.account, w.worker_id)) entries.push_back(std::move(*e));
  }
  if (!entries.empty()) output_->RecordLedger(std::move(entries));
}

// ---------------------------------------------------------------------------------------------------
// Restore and queries

void Scheduler::Restore(Time now, std::vector<TaskRecord> records) {
  // Oldest first, so requeued tasks keep their FIFO order within each priority (ids are random).
  std::sort(records.begin(), records.end(), [](const TaskRecord& a, const TaskRecord& b) {
    return a.created_at != b.created_at ? a.created_at < b.created_at : a.id < b.id;
  });
  size_t requeued = 0;
  size_t awaiting_reattach = 0;
  size_t skipped = 0;
  for (TaskRecord& r : records) {
    if (tasks_.count(r.id) > 0) continue;
    std::optional<uint32_t> service = ServiceIndex(r.service);
    if (!service) {
      ++skipped;  // the service table is full: the task stays on record only
      continue;
    }
    Task& t = tasks_[r.id];
    static_cast<TaskRecord&>(t) = std::move(r);
    t.service_index = *service;
    ++services_[t.service_index].tasks_in_memory;
    t.priority = std::min<uint32_t>(t.priority, 9);
    if (!t.idempotency_key.empty())
      idempotency_[IdempotencySlot(t.owner, t.idempotency_key)] = t.id;
    if (proto::IsTerminal(t.status)) {
      finished_result_bytes_ += t.result.size();
      finished_.emplace_back(t.id, t.completed_at);
      continue;
    }
    ++requeued;
    CountUnfinished(t, +1);
    if (t.status == TaskStatus::kRunning && !t.worker_id.empty()) {
      // Its worker may still be running it: leave it the grace to come back and keep the lease.
      t.run_at = std::max(t.run_at, now + config_.ReattachGrace());
      ++awaiting_reattach;
    }
    if (t.run_at > now) {
      t.status = TaskStatus::kQueued;
      t.queued_at = now;
      delayed_.Push({t.run_at, t.id, t.epoch});
      ++services_[t.service_index].delayed;
    } else {
      Enqueue(now, t, /*front=*/false);
    }
  }
  spdlog::info(
      "restored {} task(s), {} unfinished back in their queues ({} that were running held {} ms "
      "for their workers to come back)",
      records.size(), requeued, awaiting_reattach, ToMs(config_.ReattachGrace()));
  if (skipped > 0) {
    spdlog::error("{} recovered task(s) left on record only: the service table is full ({} names)",
                  skipped, config_.max_services);
  }
}

void Scheduler::CountUnfinished(const Task& t, int delta) {
  if (delta > 0) {
    ++unfinished_tasks_;
    unfinished_bytes_ += t.payload.size();
  } else {
    --unfinished_tasks_;
    unfinished_bytes_ -= std::min(unfinished_bytes_, t.payload.size());
  }
}

size_t Scheduler::total_queued() const {
  size_t n = 0;
  for (const Service& s : services_) n += s.queued() + s.delayed;  // forgotten slots hold zeros
  return n;
}

size_t Scheduler::total_in_flight() const {
  size_t n = 0;
  for (const Service& s : services_) n += s.in_flight;
  return n;
}

Duration Scheduler::OldestWait(Time now, uint32_t s) const {
  std::optional<Time> since = services_[s].queue.OldestSince();
  return since ? std::max(Duration(0), now - *since) : Duration(0);
}

std::vector<proto::Recommendation> Scheduler::Recommend(
    Time now, uint32_t tier, const proto::Capabilities& caps,
    const std::vector<uint32_t>& provided) const {
  struct Scored {
    double score;
    const CatalogEntry* entry;
    std::string reason;
  };
  std::vector<Scored> scored;
  for (const CatalogEntry& e : config_.catalog) {
    if (e.tier < tier) continue;  // a worker never takes a higher tier's services
    if (e.min_gpu_memory_gb > 0 && caps.gpu_memory_gb < e.min_gpu_memory_gb) continue;
    if (e.min_ram_gb > 0 && caps.ram_gb < e.min_ram_gb) continue;
    auto s = FindService(e.service);
    if (s && std::binary_search(provided.begin(), provided.end(), *s)) continue;
    size_t queued = s ? services_[*s].queued() + services_[*s].delayed : 0;
    double waiting_s = s ? ToSecondsF(OldestWait(now, *s)) : 0;
    uint32_t providers = s ? services_[*s].providers : 0;
    // Demand over supply; a service meant for exactly this tier is worth more than one it could
    // also run.
    double demand = static_cast<double>(queued) + waiting_s / 10.0 + 1.0;
    double score = demand / (providers + 1.0) * (e.tier == tier ? 2.0 : 1.0);
    std::string reason =
        std::to_string(queued) + " task(s) waiting, " + std::to_string(providers) + " provider(s)";
    scored.push_back({score, &e, std::move(reason)});
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const Scored& a, const Scored& b) { return a.score > b.score; });
  std::vector<proto::Recommendation> out;
  for (size_t i = 0; i < scored.size() && out.size() < config_.max_recommendations; ++i) {
    const CatalogEntry& e = *scored[i].entry;
    out.push_back({e.service, e.tier, e.image, e.port, scored[i].reason});
  }
  return out;
}

std::string_view Scheduler::Health(Time now, const Worker& w) const {
  if (!w.alive) return "offline";
  if (now - w.last_heard > config_.heartbeat_interval + config_.heartbeat_interval / 2)
    return "late";
  return "healthy";
}

proto::TaskView Scheduler::View(Time now, const Task& t, bool with_result) const {
  proto::TaskView v = ViewOf(t, with_result);
  v.waiting_for_provider = t.status == TaskStatus::kQueued && !HasProvider(t);
  if (t.queue_slot != FairQueue::kNoSlot) {
    // Where it stands in its service's fair order (docs/http-api.md): 1 = next to start. The start
    // is estimated from the service's starts over the last minute; unknown (0, left out) without
    // any, or while nothing can take it.
    const Service& svc = services_[t.service_index];
    const double rate = v.waiting_for_provider ? 0 : svc.starts.PerSecond(now, 60);
    const FairQueue::Position pos = svc.queue.PositionOf(now, t.queue_slot, rate);
    v.queue_position = pos.ahead + 1;
    v.estimated_start_s = std::max(0.0, pos.start_s);
  }
  if (t.status == TaskStatus::kRunning) {
    v.progress = t.progress;
    v.progress_message = t.progress_message;
  }
  return v;
}

}  // namespace rma::broker
