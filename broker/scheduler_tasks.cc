// The scheduler's task life cycle: results, completion, failures and retries with back-off,
// terminal states, waiters, persistence records, eviction of finished tasks, and the admin actions
// on dead tasks. See scheduler.h and docs/architecture.md.
#include "broker/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace rma::broker {

using proto::Command;
using proto::TaskStatus;

// ---------------------------------------------------------------------------------------------------
// Results

void Scheduler::OnWorkerResult(Time now, const std::string& identity, proto::TaskResult result) {
  // Only the session holding an attempt's lease may end it. An unregistered session is told to
  // register again (it lists what it holds in READY, which gives its own leases back, and then
  // sends its results again); anybody else is refused and nothing changes.
  int32_t index = WorkerByIdentity(identity);
  if (index < 0) {
    RefuseUnregistered(identity, "RESULT", result.task_id, result.attempt);
    return;
  }
  Worker& w = workers_[index];
  Heard(now, w);
  auto held = std::find_if(w.running.begin(), w.running.end(), [&](const proto::RunningTask& r) {
    return r.task_id == result.task_id && r.attempt == result.attempt;
  });
  if (held == w.running.end()) {
    spdlog::warn("worker {} '{}' sent a result for attempt {} of task {} it does not hold",
                 w.worker_id, w.name, result.attempt, ToString(result.task_id));
    RefuseNotLeaseHolder(now, w, result.task_id, result.attempt);
    return;
  }
  *held = w.running.back();
  w.running.pop_back();
  w.lru = ++lru_counter_;
  UpdateReady(w);

  Task* t = Find(result.task_id);
  const bool current = t != nullptr && t->status == TaskStatus::kRunning && t->worker == index &&
                       t->running_attempt == result.attempt;
  // Not current: the broker ended the lease itself (timeout, cancel, completed by another attempt)
  // and this answer frees the slot; it changes nothing else.
  if (current) {
    const Duration ran = now - t->started_at;
    w.busy += ran;
    --services_[t->service_index].in_flight;
    t->worker = -1;
    if (result.outcome == proto::Outcome::kOk) {
      // Also a replica's result, which verification may still hold before the task completes.
      CloseAttempt(&t->attempt_log, now, "completed", "", "");
      ++w.tasks_done;
      NoteReputation(now, w, reputation_.OnAccepted(now, w.reputation_key, w.account));
      if (NeedsVerification(*t, w)) {
        AddReplicaResult(now, *t, w, std::move(result), ran);
      } else {
        Credit(now, *t, w.account, w.worker_id, w.tier, result.attempt, ran);
        Complete(now, *t, std::move(result));
      }
    } else if (result.outcome == proto::Outcome::kCancelled) {
      // The worker gave the task up on its own (drain grace period, shutdown): run it elsewhere.
      CloseAttempt(&t->attempt_log, now, "requeued", "", "given up by its worker");
      Requeue(now, *t, Settled(now, w), "given up by its worker");
    } else {
      ++w.tasks_failed;
      // A retryable error is the worker's or its backend's failure; one that is not says the task
      // itself is bad (its payload), and must not let a client's bad tasks sink honest workers.
      if (result.retryable) {
        NoteReputation(now, w, reputation_.OnError(now, w.reputation_key, w.account));
      }
      if (t->transient) t->avoid_worker = index;
      FailAttempt(now, *t, result.error.empty() ? "handler failed" : result.error, "handler_error",
                  result.retryable);
    }
  }
  DispatchForWorker(now, static_cast<uint32_t>(index));
}

bool Scheduler::Settled(Time now, const Worker& w) const {
  return now - w.registered_at >= config_.heartbeat_interval * config_.liveness;
}

void Scheduler::Requeue(Time now, Task& t, bool settled, std::string_view why) {
  if (StreamStarted(t)) {
    // Its caller has the first chunks of this attempt's answer: another attempt would start the
    // answer again. The call ends here; its caller ends its stream with the error.
    t.error = "the worker was lost after the answer started streaming (" + std::string(why) + ")";
    t.error_code = "worker_lost";
    Finish(now, t, TaskStatus::kDead);
    return;
  }
  ++t.requeues;
  ++counters_.requeued;
  ++services_[t.service_index].counters.requeued;
  // Only a worker whose session lived a liveness window counts toward dead-lettering: short
  // sessions (a peer connecting, taking a task and vanishing, again and again) cannot dead-letter
  // another client's task; they only delay it.
  if (settled) ++t.losses;
  if (t.losses > config_.max_requeues && t.verification) {
    EndVerification(now, t, "the workers running its replica were lost");
  } else if (t.losses > config_.max_requeues) {
    t.error =
        "lost by " + std::to_string(t.losses) + " workers while running (" + std::string(why) + ")";
    t.error_code = "worker_lost";
    Finish(now, t, TaskStatus::kDead);
  } else {
    Enqueue(now, t, /*front=*/true);
  }
}

void Scheduler::Credit(Time now, const Task& t, const std::string& account,
                       const std::string& worker_id, uint32_t tier, uint32_t attempt, Duration ran,
                       bool charge_owner) {
  // An accepted result: its worker's account moves up the queues (donor priority).
  Contribute(now, account, ToSecondsF(ran) * config_.TierWeight(tier));
  if (!credits_.enabled()) return;
  CreditBook::Accepted accepted;
  accepted.task_id = t.id;
  accepted.attempt = attempt;
  accepted.service = services_[t.service_index].name;
  accepted.owner = t.owner;
  accepted.worker_account = account;
  accepted.worker_id = worker_id;
  accepted.tier = tier;
  accepted.run = ran;
  accepted.charge_owner = charge_owner;
  std::vector<LedgerEntry> entries = credits_.OnAccepted(now, accepted);
  if (!entries.empty()) output_->RecordLedger(std::move(entries));
}

void Scheduler::Complete(Time now, Task& t, proto::TaskResult&& r) {
  CloseAttempt(&t.attempt_log, now, "completed", "", "");
  t.result = std::move(r.result);
  t.result_content_type = std::move(r.content_type);
  t.http_status = r.http_status;
  t.error.clear();
  t.error_code.clear();
  Duration run = t.started_at.time_since_epoch().count() > 0 ? now - t.started_at : Duration(0);
  run_time_.Record(run);
  services_[t.service_index].run_time.Record(run);
  history_.At(now).run_time.Record(run);
  ++counters_.completed;
  ++today_.completed;
  ++services_[t.service_index].counters.completed;
  ++history_.At(now).completed;
  completion_rate_.Add(now);
  Finish(now, t, TaskStatus::kCompleted);
}

Duration Scheduler::Backoff(uint32_t failures) {
  double base = static_cast<double>(config_.retry_backoff_base.count());
  double capped =
      std::min(base * std::ldexp(1.0, static_cast<int>(std::min<uint32_t>(failures, 30)) - 1),
               static_cast<double>(config_.retry_backoff_max.count()));
  // Jitter over the upper half: retries of tasks that failed together spread out, none comes early.
  std::uniform_real_distribution<double> jitter(0.5, 1.0);
  return Duration(static_cast<int64_t>(capped * jitter(rng_)));
}

void Scheduler::FailAttempt(Time now, Task& t, std::string error, std::string code,
                            bool retryable) {
  CloseAttempt(&t.attempt_log, now, code == "timeout" ? "timeout" : "failed", code, error);
  ++counters_.failed;
  ++today_.failed;
  ++services_[t.service_index].counters.failed;
  ++history_.At(now).failed;
  if (t.verification) {
    // A replica failed: the task has a result already, so this is not the task's failure.
    ReplicaFailed(now, t);
    return;
  }
  ++t.failures;
  t.error = std::move(error);
  t.error_code = std::move(code);
  // A synchronous call is tried on another worker only while nothing reached its caller.
  if (retryable && t.failures < t.max_attempts && !StreamStarted(t)) {
    t.status = TaskStatus::kFailed;
    ++counters_.retried;
    ++services_[t.service_index].counters.retried;
    ++t.epoch;
    // A synchronous call's caller is waiting: its next attempt (on another worker, PickWorker)
    // starts at once instead of after the back-off.
    Time at = t.transient ? now : now + Backoff(t.failures);
    delayed_.Push({at, t.id, t.epoch});
    ++services_[t.service_index].delayed;
    Persist(t, WriteKind::kUpdate);
    NotifyWatchers(now, t);
    return;
  }
  Finish(now, t, TaskStatus::kDead);
}

void Scheduler::Finish(Time now, Task& t, TaskStatus status) {
  // An attempt still open ends with the task (a cancel, a purge, a lost streaming call).
  CloseAttempt(&t.attempt_log, now,
               status == TaskStatus::kCompleted   ? "completed"
               : status == TaskStatus::kCancelled ? "cancelled"
               : t.error_code == "worker_lost"    ? "worker_lost"
                                                  : "failed",
               t.error_code, t.error);
  t.status = status;
  t.completed_at = now;
  ++t.epoch;
  if (t.verification) (void)TakeVerification(t);  // its held results are no longer needed
  switch (status) {
    case TaskStatus::kDead:
      ++counters_.dead;
      ++services_[t.service_index].counters.dead;
      break;
    case TaskStatus::kCancelled:
      ++counters_.cancelled;
      ++services_[t.service_index].counters.cancelled;
      break;
    case TaskStatus::kExpired:
      ++counters_.expired;
      ++services_[t.service_index].counters.expired;
      break;
    default:
      break;
  }
  CountUnfinished(t, -1);
  finished_result_bytes_ += t.result.size();
  NotifyWaiters(now, t);
  Persist(t, WriteKind::kUpdate);
  finished_.emplace_back(t.id, now);
  MaybeEvict(now);
}

void Scheduler::CancelRunning(Time now, Task& t, std::string_view reason) {
  if (t.status != TaskStatus::kRunning || t.worker < 0) return;
  Worker& w = workers_[t.worker];
  SendToWorker(now, w, proto::CancelAttempt{t.id, t.running_attempt, std::string(reason)});
  --services_[t.service_index].in_flight;
  t.worker = -1;
  // The worker's slot stays taken until it answers the CANCEL with a RESULT: the broker never
  // exceeds the credit the worker announced.
}

void Scheduler::NotifyWaiters(Time now, Task& t) {
  if (t.waiters.empty()) return;
  std::vector<Waiter> waiters = std::move(t.waiters);
  t.waiters.clear();
  for (const Waiter& w : waiters) {
    pending_waits_.erase(w.id);
    auto count = waiters_per_client_.find(w.client);
    if (count != waiters_per_client_.end() && --count->second == 0)
      waiters_per_client_.erase(count);
    ReplyTask(now, w.client, w.ref, t, w.after);
  }
}

void Scheduler::NotifyWatchers(Time now, const Task& t) {
  for (const Waiter& w : t.waiters) {
    if (w.watch) ReplyTask(now, w.client, w.ref, t, w.after);
  }
}

bool Scheduler::AddWaiter(Time now, Task& t, const std::string& client, uint64_t ref, bool sync,
                          Duration wait, uint64_t after, bool watch) {
  uint32_t& per_client = waiters_per_client_[client];
  if (t.waiters.size() >= config_.max_waiters_per_task ||
      per_client >= config_.max_waiters_per_client) {
    if (per_client == 0) waiters_per_client_.erase(client);
    return false;
  }
  ++per_client;
  const uint64_t id = ++next_waiter_id_;
  t.waiters.push_back(Waiter{client, ref, sync, id, after, watch});
  pending_waits_[id] = WaiterSlot{t.id, static_cast<uint32_t>(t.waiters.size() - 1)};
  waits_.Push({now + wait, id});
  return true;
}

void Scheduler::RemoveWaiter(Task& t, uint32_t index) {
  const Waiter gone = t.waiters[index];
  pending_waits_.erase(gone.id);
  auto count = waiters_per_client_.find(gone.client);
  if (count != waiters_per_client_.end() && --count->second == 0) waiters_per_client_.erase(count);
  // Swap with the last and pop: O(1), and the moved waiter's slot follows it.
  if (index + 1 != t.waiters.size()) {
    t.waiters[index] = std::move(t.waiters.back());
    pending_waits_[t.waiters[index].id].index = index;
  }
  t.waiters.pop_back();
}

void Scheduler::ReplyTask(Time now, const std::string& client, uint64_t ref, const Task& t,
                          uint64_t after) {
  proto::TaskInfo info;
  info.ref = ref;
  info.task = View(now, t, /*with_result=*/true);
  // The end of a task leaves at once, even ahead of its ACCEPTED: the caller has its answer, and
  // waiting for the commit would only delay it (the ACCEPTED still follows the commit). A task that
  // has not ended never overtakes its acceptance.
  if (after != 0 && !proto::IsTerminal(t.status)) {
    return output_->ToClientAfter(client, std::move(info), after);
  }
  output_->ToClient(client, std::move(info));
}

void Scheduler::ReplyError(const std::string& client, uint64_t ref, const Status& status,
                           std::vector<std::string> available, std::string suggestion) {
  proto::Error e;
  e.ref = ref;
  e.code = std::string(StatusCodeName(status.code()));
  e.message = status.message();
  e.available_services = std::move(available);
  e.suggestion = std::move(suggestion);
  output_->ToClient(client, std::move(e));
}

void Scheduler::ReplyError(const std::string& client, uint64_t ref, std::string code,
                           std::string message) {
  output_->ToClient(client, proto::Error{ref, std::move(code), std::move(message), {}, {}});
}

void Scheduler::Persist(const Task& t, WriteKind kind) {
  if (!durable_ || t.transient) return;
  // The record is the task's durable part; its payload and result are shared, not copied.
  output_->Record(TaskWrite{kind, static_cast<const TaskRecord&>(t)});
}

void Scheduler::MaybeEvict(Time now) {
  while (!finished_.empty()) {
    auto [id, at] = finished_.front();
    bool too_many = finished_.size() > config_.max_finished_in_memory;
    bool too_big = finished_result_bytes_ > config_.max_result_bytes_in_memory;
    bool too_old = now - at > config_.result_ttl;
    if (!too_many && !too_big && !too_old) break;
    finished_.pop_front();
    auto it = tasks_.find(id);
    if (it == tasks_.end() || !proto::IsTerminal(it->second.status)) continue;  // retried since
    Forget(it->second);
  }
}

void Scheduler::Forget(Task& t) {
  const TaskId id = t.id;
  if (!t.idempotency_key.empty()) {
    auto key = idempotency_.find(IdempotencySlot(t.owner, t.idempotency_key));
    if (key != idempotency_.end() && key->second == id) idempotency_.erase(key);
  }
  if (proto::IsTerminal(t.status)) {
    finished_result_bytes_ -= std::min(finished_result_bytes_, t.result.size());
  }
  --services_[t.service_index].tasks_in_memory;
  tasks_.erase(id);
}

Status Scheduler::RetryDead(Time now, TaskId id) {
  Task* t = Find(id);
  if (t == nullptr) return Status::NotFound("task " + ToString(id) + " is not in memory");
  if (t->status != TaskStatus::kDead) {
    return Status::FailedPrecondition("task " + ToString(id) + " is " +
                                      std::string(proto::TaskStatusName(t->status)) + ", not dead");
  }
  t->failures = 0;
  t->requeues = 0;
  t->losses = 0;
  t->error.clear();
  t->error_code.clear();
  t->completed_at = Time{};
  finished_result_bytes_ -= std::min(finished_result_bytes_, t->result.size());
  CountUnfinished(*t, +1);
  Enqueue(now, *t, /*front=*/false);
  Persist(*t, WriteKind::kUpdate);
  return Status::Ok();
}

Status Scheduler::DiscardDead(Time, TaskId id) {
  Task* t = Find(id);
  if (t == nullptr) return Status::NotFound("task " + ToString(id) + " is not in memory");
  if (t->status != TaskStatus::kDead) {
    return Status::FailedPrecondition("task " + ToString(id) + " is " +
                                      std::string(proto::TaskStatusName(t->status)) + ", not dead");
  }
  Persist(*t, WriteKind::kDelete);
  Forget(*t);
  return Status::Ok();
}

Result<size_t> Scheduler::PurgeService(Time now, const std::string& service) {
  auto index = FindService(service);
  if (!index) return Status::NotFound("no service '" + service + "'");
  // Ids first: ending a task may evict finished ones from tasks_.
  std::vector<TaskId> queued;
  for (const auto& [id, t] : tasks_) {
    if (t.service_index == *index && !t.transient &&
        (t.status == TaskStatus::kQueued || t.status == TaskStatus::kFailed)) {
      queued.push_back(id);
    }
  }
  for (TaskId id : queued) {
    Task* t = Find(id);
    if (t == nullptr) continue;
    Unqueue(now, *t);
    t->error = "purged by an admin";
    t->error_code = "purged";
    Finish(now, *t, TaskStatus::kCancelled);
  }
  if (!queued.empty()) {
    spdlog::info("service {}: {} queued task(s) purged by an admin", service, queued.size());
  }
  return queued.size();
}

Scheduler::BulkOutcome Scheduler::BulkDead(Time now, bool retry, const std::string& service,
                                           const std::string& error_code,
                                           const std::vector<TaskId>& ids, uint64_t limit) {
  BulkOutcome out;
  std::vector<TaskId> matched;
  auto matches = [&](const Task& t) {
    return t.status == TaskStatus::kDead && (service.empty() || t.service == service) &&
           (error_code.empty() || t.error_code == error_code);
  };
  if (!ids.empty()) {
    for (TaskId id : ids) {
      const Task* t = FindTask(id);
      if (t != nullptr && matches(*t) && matched.size() < limit) matched.push_back(id);
    }
  } else {
    for (const auto& [id, t] : tasks_) {
      if (matched.size() >= limit) break;
      if (matches(t)) matched.push_back(id);
    }
  }
  out.matched = matched.size();
  for (TaskId id : matched) {
    if ((retry ? RetryDead(now, id) : DiscardDead(now, id)).ok()) ++out.done;
  }
  out.handled = std::move(matched);
  return out;
}

}  // namespace rma::broker
