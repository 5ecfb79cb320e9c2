// The scheduler's client requests: SUBMIT (validation, idempotency keys, synchronous calls),
// GET with waiting, CANCEL_TASK and LIST. See scheduler.h and docs/protocol.md §6.
#include "broker/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace rma::broker {

using proto::Command;
using proto::TaskStatus;

// ---------------------------------------------------------------------------------------------------
// Clients

void Scheduler::OnSubmit(Time now, const std::string& client, proto::Submit submit) {
  RollDay(now);
  const bool sync = submit.mode == proto::SubmitMode::kSync;
  auto reject = [&](const Status& s, std::vector<std::string> available = {},
                    std::string suggestion = {}) {
    ++counters_.rejected;
    ReplyError(client, submit.ref, s, std::move(available), std::move(suggestion));
  };
  Duration timeout = submit.timeout_ms > 0 ? Ms(submit.timeout_ms) : config_.default_timeout;
  if (timeout > config_.max_timeout) {
    return reject(Status::InvalidArgument("timeout_ms exceeds the broker's maximum of " +
                                          std::to_string(ToMs(config_.max_timeout)) + " ms"));
  }
  if (!sync && !submit.idempotency_key.empty()) {
    // Keys are per owner: another account's key names another task.
    auto it = idempotency_.find(IdempotencySlot(submit.owner, submit.idempotency_key));
    if (it != idempotency_.end()) {
      if (Task* first = Find(it->second)) {
        proto::Accepted a{submit.ref, first->id, first->status, true, false};
        const uint64_t after = output_->ToClientWhenDurable(client, std::move(a));
        if (submit.wait_ms > 0)
          WaitAfterAccepted(now, *first, client, submit.ref, submit.wait_ms, after);
        return;
      }
    }
  }
  // Budgets first: a full broker refuses before it creates anything (queue_full: the gateway
  // answers 503 with Retry-After, and nothing was accepted).
  if (unfinished_tasks_ >= config_.max_unfinished_tasks ||
      unfinished_bytes_ + submit.payload.size() > config_.max_unfinished_bytes) {
    Refuse(Refusal::kQueueFull);
    ++counters_.rejected;
    return ReplyError(client, submit.ref, "queue_full",
                      "the broker holds as many unfinished tasks as it may (" +
                          std::to_string(unfinished_tasks_) + " tasks, " +
                          std::to_string(unfinished_bytes_ >> 20) +
                          " MiB of payloads); retry later");
  }
  if ((sync || submit.wait_ms > 0) &&
      waiters_per_client_[client] >= config_.max_waiters_per_client) {
    Refuse(Refusal::kTooManyWaiters);
    return reject(
        Status::ResourceExhausted("too many calls wait for their answer from this client"));
  }
  // A model names the workers that may run the task, and the service when none is given.
  bool model_provided = false;
  if (!submit.model.empty()) {
    if (Status routed = RouteByModel(&submit, sync, &model_provided); !routed.ok()) {
      return reject(routed);
    }
  }
  std::optional<uint32_t> index = ServiceIndex(submit.service);
  if (!index) {
    Refuse(Refusal::kTooManyServices);
    return reject(Status::ResourceExhausted("too many distinct services (" +
                                            std::to_string(config_.max_services) + ")"));
  }
  const uint32_t s = *index;
  const bool trusted_only = submit.trusted_only || TrustedOnlyService(submit.service);
  const bool provided = submit.model.empty() ? HasProvider(s) : model_provided;
  if (sync && provided && trusted_only && !HasTrustedProvider(s)) {
    ++services_[s].counters.rejected;
    return reject(Status::Unavailable("Service '" + submit.service +
                                      "' has no live worker an admin marked trusted, and this "
                                      "call is for trusted workers only"));
  }
  if (sync && !provided) {
    std::vector<std::string> available = AvailableServices();
    std::string suggestion =
        available.empty()
            ? "No worker is connected. Start one with: rma-worker --broker <endpoint> --service " +
                  submit.service + "=http://127.0.0.1:<port>"
            : "Start a worker providing '" + submit.service +
                  "', or call one of the available services.";
    ++services_[s].counters.rejected;
    return reject(Status::Unavailable("Service '" + submit.service + "' not available"),
                  std::move(available), std::move(suggestion));
  }
  if (auto shortfall = credits_.CheckSubmit(submit.owner, submit.service)) {
    ++services_[s].counters.rejected;
    ++counters_.rejected;
    proto::Error e;
    e.ref = submit.ref;
    e.code = "payment_required";
    e.message = "account '" + submit.owner + "' has " + FormatCredits(shortfall->balance) +
                " credits; a task of '" + submit.service + "' needs at least " +
                FormatCredits(shortfall->needed) +
                ". Contribute a worker to earn credits, or ask an admin for a grant.";
    e.balance = shortfall->balance;
    e.needed = shortfall->needed;
    output_->ToClient(client, std::move(e));
    return;
  }
  Service& svc = services_[s];
  if (svc.queued() + svc.delayed >= config_.max_queued_per_service) {
    ++svc.counters.rejected;
    Refuse(Refusal::kQueueFull);
    ++counters_.rejected;
    return ReplyError(client, submit.ref, "queue_full",
                      "queue for '" + submit.service + "' is full (" +
                          std::to_string(config_.max_queued_per_service) + " tasks); retry later");
  }
  if (durable_ && !sync && !store_available_) {
    ++svc.counters.rejected;
    return reject(Status::Unavailable("the task store is unavailable; the task was not accepted"));
  }

  // 64 random bits: nobody can guess another client's task (listings sort by creation time).
  TaskId id;
  auto it = tasks_.end();
  for (bool inserted = false; !inserted;) {
    id = DrawTaskId();
    std::tie(it, inserted) = tasks_.try_emplace(id);
  }
  Task& t = it->second;
  t.id = id;
  t.service_index = s;
  t.service = services_[s].name;
  ++svc.tasks_in_memory;
  t.owner = std::move(submit.owner);
  t.priority = submit.priority;
  t.min_tier = submit.min_tier;
  t.min_gpu_memory_gb = submit.min_gpu_memory_gb;
  t.model = std::move(submit.model);
  t.trusted_only = trusted_only;
  t.transient = sync;
  t.max_attempts =
      submit.max_attempts > 0 ? submit.max_attempts : (sync ? 1 : config_.default_max_attempts);
  t.timeout_ms = static_cast<uint32_t>(ToMs(timeout));
  t.created_at = now;
  t.run_at = submit.run_at_ms > 0 ? std::max(now, FromUnixMs(submit.run_at_ms)) : now;
  t.payload = std::move(submit.payload);
  t.content_type = std::move(submit.content_type);
  t.idempotency_key = sync ? std::string() : std::move(submit.idempotency_key);
  if (submit.request)
    t.request = std::make_unique<const proto::HttpRequest>(std::move(*submit.request));
  if (!t.idempotency_key.empty()) idempotency_[IdempotencySlot(t.owner, t.idempotency_key)] = id;
  CountUnfinished(t, +1);

  ++counters_.submitted;
  ++today_.submitted;
  ++svc.counters.submitted;
  ++history_.At(now).submitted;
  submission_rate_.Add(now);
  Persist(t, WriteKind::kInsert);

  if (sync) {
    // A synchronous call has one budget for queueing and running: when it is spent the caller gets
    // the task as it stands (the gateway answers 504) and the call is cancelled. (The per-client
    // waiter budget was checked above; a new task has no waiters yet.)
    (void)AddWaiter(now, t, client, submit.ref, /*sync=*/true, timeout);
    // Nothing to wait for: a call is never persisted.
    if (submit.announce)
      output_->ToClient(client, proto::Accepted{submit.ref, id, TaskStatus::kQueued});
  } else {
    proto::Accepted a{submit.ref, id, TaskStatus::kQueued, false, !provided};
    const uint64_t after = output_->ToClientWhenDurable(client, std::move(a));
    // (The per-client waiter budget was checked above; a new task has no waiters yet.)
    if (submit.wait_ms > 0) WaitAfterAccepted(now, t, client, submit.ref, submit.wait_ms, after);
  }
  if (t.run_at > now) {
    delayed_.Push({t.run_at, id, t.epoch});
    ++services_[s].delayed;
    t.status = TaskStatus::kQueued;
    t.queued_at = now;
  } else {
    Enqueue(now, t, /*front=*/false);
  }
}

Status Scheduler::RouteByModel(proto::Submit* submit, bool sync, bool* provided) const {
  *provided = false;
  const std::string model = "'" + submit->model + "'";
  const Model* m = FindModel(submit->model);
  if (m == nullptr) {
    // No registered worker lists it. A synchronous call cannot wait; an asynchronous task of a
    // named service waits for a provider like any task of a service nobody provides yet (and
    // expires after max_queue_time); without a service there is no queue to wait in.
    if (sync || submit->service.empty()) {
      return Status::NotFound("model " + model + " is not served by this pool");
    }
    return Status::Ok();
  }
  if (submit->service.empty()) {
    // The service with the most live providers of the model; among equals the first by name
    // (services are in name order), so the choice is deterministic. When none is live, that is
    // the first by name that a registered worker lists it under.
    const std::string* best = nullptr;
    uint32_t best_active = 0;
    for (const auto& [name, ms] : m->services) {
      if (best == nullptr || ms.active_providers > best_active) {
        best = &name;
        best_active = ms.active_providers;
      }
    }
    RMA_CHECK(best != nullptr) << "model " << model << " listed under no service";
    submit->service = *best;
  }
  const ModelService* ms = FindModelService(submit->model, submit->service);
  if (ms == nullptr) {
    if (sync) {
      return Status::NotFound("model " + model + " is not served by service '" + submit->service +
                              "'");
    }
    return Status::Ok();
  }
  *provided = ms->active_providers > 0;
  if (sync && !*provided) return Status::Unavailable("no live worker serves model " + model);
  return Status::Ok();
}

void Scheduler::WaitAfterAccepted(Time now, Task& t, const std::string& client, uint64_t ref,
                                  uint32_t wait_ms, uint64_t after) {
  if (proto::IsTerminal(t.status)) return ReplyTask(now, client, ref, t, after);
  const Duration wait = std::min<Duration>(Ms(wait_ms), config_.max_wait);
  if (!AddWaiter(now, t, client, ref, /*sync=*/false, wait, after)) {
    // Accepted all the same: the client reads the task with GET.
    Refuse(Refusal::kTooManyWaiters);
    output_->ToClientAfter(
        client,
        proto::ErrorOf(ref, Status::ResourceExhausted(
                                "the task was accepted, but too many waiters on this task or from "
                                "this client to wait for it; read it with GET")),
        after);
  }
}

void Scheduler::ReplyNotFound(const std::string& client, uint64_t ref, TaskId id) {
  ReplyError(client, ref, Status::NotFound("task " + ToString(id) + " not found"));
}

bool Scheduler::OnGet(Time now, const std::string& client, const proto::Get& get) {
  Task* t = Find(get.task_id);
  if (t == nullptr) return false;
  // Another owner's task does not exist for this caller (the same answer as a wrong id).
  if (!MaySee(*t, get.owner, get.admin)) {
    ReplyNotFound(client, get.ref, get.task_id);
    return true;
  }
  if (get.detail) {
    // The task page: the task as it stands now, with its payload and attempt log (no wait).
    proto::TaskInfo info;
    info.ref = get.ref;
    info.task = View(now, *t, /*with_result=*/true);
    AddDetail(*t, &info.task);
    output_->ToClient(client, std::move(info));
    return true;
  }
  if (get.watch) ReplyTask(now, client, get.ref, *t);  // the task as it stands, then its changes
  if (proto::IsTerminal(t->status) || get.wait_ms == 0) {
    if (!get.watch) ReplyTask(now, client, get.ref, *t);
    return true;
  }
  Duration wait = std::min<Duration>(Ms(get.wait_ms), config_.max_wait);
  if (!AddWaiter(now, *t, client, get.ref, /*sync=*/false, wait, /*after=*/0, get.watch)) {
    Refuse(Refusal::kTooManyWaiters);
    ReplyError(client, get.ref,
               Status::ResourceExhausted("too many waiters on this task or from this client"));
  }
  return true;
}

bool Scheduler::OnCancel(Time now, const std::string& client, const proto::CancelTask& cancel) {
  Task* t = Find(cancel.task_id);
  if (t == nullptr) return false;
  if (!MaySee(*t, cancel.owner, cancel.admin)) {
    ReplyNotFound(client, cancel.ref, cancel.task_id);
    return true;
  }
  if (!proto::IsTerminal(t->status)) {
    if (t->status == TaskStatus::kRunning) {
      CancelRunning(now, *t, "cancelled");
    } else {
      Unqueue(now, *t);
    }
    t->error = "cancelled by a client";
    t->error_code = "cancelled";
    Finish(now, *t, TaskStatus::kCancelled);
    spdlog::debug("task {} cancelled", ToString(t->id));
  }
  // The answer is the task as it now stands: cancelled, or the state it had already ended in.
  if (const Task* after = Find(cancel.task_id)) ReplyTask(now, client, cancel.ref, *after);
  return true;
}

void Scheduler::OnList(Time now, const std::string& client, const proto::List& list) {
  Result<ListFilter> filter = ParseListFilter(list);
  if (!filter.ok()) return ReplyError(client, list.ref, filter.status());
  std::optional<uint32_t> service;
  if (!filter->service.empty()) {
    service = FindService(filter->service);
    if (!service) {
      output_->ToClient(client, proto::TaskList{list.ref, {}, {}});
      return;
    }
  }
  std::vector<const Task*> matches;
  for (const auto& [id, t] : tasks_) {
    if (service && t.service_index != *service) continue;
    if (!Matches(*filter, t)) continue;
    if (!MaySee(t, list.owner, list.admin)) continue;
    matches.push_back(&t);
  }
  size_t limit = std::min<size_t>(filter->limit, matches.size());
  // Newest first (ids are random, so by creation time); the same order as the store's.
  std::partial_sort(
      matches.begin(), matches.begin() + static_cast<std::ptrdiff_t>(limit), matches.end(),
      [](const Task* a, const Task* b) { return ListsBefore(CursorOf(*a), CursorOf(*b)); });
  proto::TaskList reply;
  reply.ref = list.ref;
  for (size_t i = 0; i < limit; ++i)
    reply.tasks.push_back(View(now, *matches[i], /*with_result=*/false));
  if (matches.size() > limit) reply.next_cursor = EncodeCursor(CursorOf(*matches[limit - 1]));
  output_->ToClient(client, std::move(reply));
}

void Scheduler::OnClientHeartbeat(Time, const std::string& client) {
  output_->ToClient(client, proto::Bodyless{Command::kHeartbeat});
}

void Scheduler::OnClientMalformed(Time, const std::string& client, uint64_t ref,
                                  const Status& why) {
  ++counters_.rejected;
  ReplyError(client, ref, why);
}

}  // namespace rma::broker
