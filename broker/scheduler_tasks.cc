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
  // An unregistered session (the broker restarted, or declared the worker dead) is told to register
  // again, but its result may still count.
  int32_t index = RegisteredWorker(identity);
  bool freed = false;
  if (index >= 0) {
    Worker& w = workers_[index];
    Heard(now, w);
    auto it = std::find_if(w.running.begin(), w.running.end(), [&](const proto::RunningTask& r) {
      return r.task_id == result.task_id && r.attempt == result.attempt;
    });
    if (it != w.running.end()) {
      *it = w.running.back();
      w.running.pop_back();
      freed = true;
      w.lru = ++lru_counter_;
      UpdateReady(w);
    }
  }

  Task* t = Find(result.task_id);
  if (t != nullptr && !proto::IsTerminal(t->status)) {
    bool current = t->status == TaskStatus::kRunning && t->worker == index && index >= 0 &&
                   t->running_attempt == result.attempt;
    if (current) {
      Worker& w = workers_[index];
      w.busy += now - t->started_at;
      --services_[t->service_index].in_flight;
      t->worker = -1;
      if (result.outcome == proto::Outcome::kOk) {
        ++w.tasks_done;
        Complete(now, *t, std::move(result));
      } else if (result.outcome == proto::Outcome::kCancelled) {
        // The worker gave the task up on its own (drain grace period, shutdown): run it elsewhere.
        ++t->requeues;
        ++counters_.requeued;
        Enqueue(now, *t, /*front=*/true);
      } else {
        ++w.tasks_failed;
        FailAttempt(now, *t, result.error.empty() ? "handler failed" : result.error,
                    "handler_error", result.retryable);
      }
    } else if (result.outcome == proto::Outcome::kOk) {
      // A result from an earlier lease (its worker was thought lost, or the broker restarted): the
      // work is done, so the first result wins and any other running attempt is stopped.
      if (t->status == TaskStatus::kRunning) {
        CancelRunning(now, *t, "completed by another attempt");
      } else {
        Unqueue(*t);
      }
      if (index >= 0) ++workers_[index].tasks_done;
      Complete(now, *t, std::move(result));
    }
    // A failed or cancelled report for an attempt that is no longer current changes nothing.
  }
  if (freed) DispatchForWorker(now, static_cast<uint32_t>(index));
}

void Scheduler::Complete(Time now, Task& t, proto::TaskResult&& r) {
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
  ++t.failures;
  ++counters_.failed;
  ++today_.failed;
  ++services_[t.service_index].counters.failed;
  ++history_.At(now).failed;
  t.error = std::move(error);
  t.error_code = std::move(code);
  if (retryable && t.failures < t.max_attempts) {
    t.status = TaskStatus::kFailed;
    ++counters_.retried;
    ++services_[t.service_index].counters.retried;
    ++t.epoch;
    Time at = now + Backoff(t.failures);
    delayed_.Push({at, t.id, t.epoch});
    ++services_[t.service_index].delayed;
    Persist(t, WriteKind::kUpdate);
    return;
  }
  Finish(now, t, TaskStatus::kDead);
}

void Scheduler::Finish(Time now, Task& t, TaskStatus status) {
  t.status = status;
  t.completed_at = now;
  ++t.epoch;
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
  NotifyWaiters(t);
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

void Scheduler::NotifyWaiters(Task& t) {
  if (t.waiters.empty()) return;
  std::vector<Waiter> waiters = std::move(t.waiters);
  t.waiters.clear();
  for (const Waiter& w : waiters) ReplyTask(w.client, w.ref, t);
}

void Scheduler::ReplyTask(const std::string& client, uint64_t ref, const Task& t) {
  proto::TaskInfo info;
  info.ref = ref;
  info.task = View(t, /*with_result=*/true);
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

void Scheduler::Persist(const Task& t, WriteKind kind) {
  if (!durable_ || t.transient) return;
  // The record is the task's durable part; its payload and result are shared, not copied.
  output_->Record(TaskWrite{kind, static_cast<const TaskRecord&>(t)});
}

void Scheduler::MaybeEvict(Time now) {
  while (!finished_.empty()) {
    auto [id, at] = finished_.front();
    bool too_many = finished_.size() > config_.max_finished_in_memory;
    bool too_old = now - at > config_.result_ttl;
    if (!too_many && !too_old) break;
    finished_.pop_front();
    auto it = tasks_.find(id);
    if (it == tasks_.end() || !proto::IsTerminal(it->second.status)) continue;  // retried since
    if (!it->second.idempotency_key.empty()) {
      auto key = idempotency_.find(it->second.idempotency_key);
      if (key != idempotency_.end() && key->second == id) idempotency_.erase(key);
    }
    tasks_.erase(it);
  }
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
  t->error.clear();
  t->error_code.clear();
  t->completed_at = Time{};
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
  if (!t->idempotency_key.empty()) idempotency_.erase(t->idempotency_key);
  tasks_.erase(id);
  return Status::Ok();
}

}  // namespace rma::broker
