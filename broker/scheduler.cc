// The scheduler's rules; see scheduler.h for the model and docs/architecture.md for the life cycle.
#include "broker/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

#include "schemas/codec.h"

namespace rma::broker {

using proto::Command;
using proto::TaskStatus;

namespace {
// How many queued tasks dispatch looks past a head whose requirements no ready worker meets.
constexpr int kRequirementScanWindow = 16;
// How many ready workers are inspected for a task with a GPU-memory requirement.
constexpr int kRequirementScanWorkers = 64;
// Bound on distinct service names, so hostile submissions cannot grow the service table without
// end.
constexpr size_t kMaxServices = 10000;

uint32_t PerMille(double x) { return static_cast<uint32_t>(std::clamp(x, 0.0, 60.0) * 1000.0); }
}  // namespace

uint32_t AssignTier(const proto::Capabilities& caps, const TierThresholds& thresholds) {
  if (caps.worker_type == "storage") return 3;
  if (caps.has_gpu && caps.worker_type != "cpu") return 1;
  if (caps.cpu_cores >= thresholds.cpu_min_cores && caps.ram_gb >= thresholds.cpu_min_ram_gb)
    return 2;
  return 3;
}

Scheduler::Scheduler(BrokerConfig config, SchedulerOutput* output, bool durable, uint64_t seed)
    : config_(std::move(config)),
      output_(output),
      durable_(durable),
      rng_(seed),
      last_task_id_(0),
      delayed_([this](const TimedEntry& e) { return EpochLive(e); }),
      expiry_([this](const TimedEntry& e) { return EpochLive(e); }),
      timeouts_([this](const TimedEntry& e) {
        const Task* t = FindTask(e.id);
        return t != nullptr && t->status == TaskStatus::kRunning && t->running_attempt == e.tag;
      }),
      waits_([this](const WaitEntry& e) {
        const Task* t = FindTask(e.id);
        return t != nullptr &&
               std::any_of(t->waiters.begin(), t->waiters.end(),
                           [&](const Waiter& w) { return w.client == e.client && w.ref == e.ref; });
      }) {
  for (const GenericService& g : kGenericServices) {
    uint32_t s = ServiceIndex(std::string(g.name));
    services_[s].generic_max_tier = g.max_tier;
  }
  for (const CatalogEntry& e : config_.catalog) (void)ServiceIndex(e.service);
}

bool Scheduler::EpochLive(const TimedEntry& e) const {
  const Task* t = FindTask(e.id);
  return t != nullptr && t->epoch == e.tag;
}

// ---------------------------------------------------------------------------------------------------
// Registry

int32_t Scheduler::RegisteredWorker(const std::string& identity) {
  int32_t index = WorkerByIdentity(identity);
  if (index < 0) {
    // A session the broker does not know (it restarted, or declared the worker dead): register
    // again.
    output_->ToWorker(identity, Command::kDisconnect,
                      proto::Encode(proto::Disconnect{"not registered: send READY", true}));
  }
  return index;
}

int32_t Scheduler::WorkerByIdentity(const std::string& identity) const {
  auto it = by_identity_.find(identity);
  return it == by_identity_.end() ? -1 : static_cast<int32_t>(it->second);
}

void Scheduler::Heard(Time now, Worker& w) { w.last_heard = now; }

void Scheduler::SendToWorker(Time now, Worker& w, Command command, std::string body) {
  w.last_sent = now;
  output_->ToWorker(w.identity, command, std::move(body));
}

void Scheduler::RemoveFromReady(Worker& w) {
  if (!w.in_ready) return;
  tier_ready_[w.tier].erase(w.key);
  for (uint32_t s : w.services) services_[s].ready.erase(w.key);
  w.in_ready = false;
}

void Scheduler::UpdateReady(Worker& w) {
  RemoveFromReady(w);
  if (!w.alive || w.draining || w.in_flight() >= w.slots) return;
  w.key = ReadyKey{w.tier, w.in_flight() * 1000 / w.slots,
                   std::min<uint32_t>(PerMille(w.report.load), 65535), w.lru,
                   static_cast<uint32_t>(&w - workers_.data())};
  tier_ready_[w.tier].insert(w.key);
  for (uint32_t s : w.services) services_[s].ready.insert(w.key);
  w.in_ready = true;
}

void Scheduler::AttachServices(Worker& w) {
  w.services.clear();
  for (const proto::ServiceInfo& info : w.manifest) w.services.push_back(ServiceIndex(info.name));
  std::sort(w.services.begin(), w.services.end());
  w.services.erase(std::unique(w.services.begin(), w.services.end()), w.services.end());
  for (uint32_t s : w.services) {
    ++services_[s].providers;
    if (!w.draining) ++services_[s].active_providers;
  }
  if (!w.draining) ++tier_live_[w.tier];
}

void Scheduler::DetachServices(Worker& w) {
  RemoveFromReady(w);
  for (uint32_t s : w.services) {
    --services_[s].providers;
    if (!w.draining) --services_[s].active_providers;
  }
  if (!w.draining) --tier_live_[w.tier];
  w.services.clear();
}

WorkerRecord Scheduler::RecordOf(const Worker& w, std::string_view status) {
  WorkerRecord r;
  r.worker_id = w.worker_id;
  r.name = w.name;
  r.tier = w.tier;
  r.simulated = w.simulated;
  r.capabilities = w.caps;
  for (const proto::ServiceInfo& s : w.manifest) r.services.push_back(s.name);
  r.status = std::string(status);
  r.first_seen = w.first_seen;
  r.last_seen = w.last_heard;
  r.tasks_done = w.tasks_done;
  r.tasks_failed = w.tasks_failed;
  r.busy_seconds = ToSecondsF(w.busy);
  return r;
}

void Scheduler::RecordWorkerState(const Worker& w, std::string_view status) {
  if (durable_) output_->RecordWorker(RecordOf(w, status));
}

void Scheduler::OnWorkerReady(Time now, const std::string& identity, proto::Ready ready) {
  auto refuse = [&](const std::string& reason) {
    spdlog::warn("refused worker {} ({}): {}", ready.worker_id, ready.name, reason);
    output_->ToWorker(identity, Command::kDisconnect,
                      proto::Encode(proto::Disconnect{reason, false}));
  };
  if (!config_.worker_token.empty()) {
    // Constant-time comparison: the token is a secret.
    const std::string& want = config_.worker_token;
    unsigned diff = want.size() ^ ready.token.size();
    for (size_t i = 0; i < ready.token.size(); ++i)
      diff |= static_cast<unsigned>(ready.token[i] ^ want[i % want.size()]);
    if (diff != 0) return refuse("invalid worker token");
  }
  if (ready.simulated && !config_.allow_simulated) {
    return refuse("simulated workers are not allowed (start the broker with --allow-simulated)");
  }
  if (ready.services.size() > config_.limits.max_array) return refuse("too many services");

  // A worker id arriving on a new connection replaces its old session; its unfinished work is
  // settled by ReconcileRunning below.
  uint32_t index;
  auto known = by_worker_id_.find(ready.worker_id);
  bool returning = known != by_worker_id_.end();
  if (returning) {
    index = known->second;
    Worker& old = workers_[index];
    if (old.alive) {
      DetachServices(old);
      by_identity_.erase(old.identity);
    }
  } else {
    int32_t other = WorkerByIdentity(identity);
    if (other >= 0) {
      // Same connection, new worker id: the old identity is finished.
      LoseWorker(now, static_cast<uint32_t>(other), "re-registered under another worker id");
      ForgetWorker(static_cast<uint32_t>(other));
    }
    if (!free_worker_slots_.empty()) {
      index = free_worker_slots_.back();
      free_worker_slots_.pop_back();
    } else {
      index = static_cast<uint32_t>(workers_.size());
      workers_.emplace_back();
    }
    workers_[index] = Worker{};
    workers_[index].first_seen = now;
    by_worker_id_[ready.worker_id] = index;
  }
  // A live session on another identity still owns its lease list; keep it for reconciliation.
  std::vector<proto::RunningTask> previous = std::move(workers_[index].running);
  Worker& w = workers_[index];
  w.running.clear();
  w.in_use = true;
  w.alive = true;
  w.draining = false;
  w.identity = identity;
  w.worker_id = ready.worker_id;
  w.name = ready.name.empty() ? ready.worker_id : ready.name;
  w.agent_version = ready.agent_version;
  w.caps = std::move(ready.capabilities);
  w.simulated = ready.simulated;
  w.tier = AssignTier(w.caps, config_.tiers);
  w.manifest = std::move(ready.services);
  w.slots = ready.slots;
  w.report = proto::Heartbeat{};
  w.report.ram_available_gb = w.caps.ram_available_gb;
  w.registered_at = now;
  w.last_heard = now;
  w.last_sent = now;
  by_identity_[identity] = index;
  AttachServices(w);

  // Leases of the previous session that the worker does not report any more are lost.
  for (const proto::RunningTask& r : previous) {
    bool still = std::any_of(ready.running.begin(), ready.running.end(),
                             [&](const proto::RunningTask& x) { return x.task_id == r.task_id; });
    if (still) continue;
    Task* t = Find(r.task_id);
    if (t != nullptr && t->status == TaskStatus::kRunning &&
        t->worker == static_cast<int32_t>(index) && t->running_attempt == r.attempt) {
      --services_[t->service].in_flight;
      t->worker = -1;
      ++t->requeues;
      ++counters_.requeued;
      Enqueue(now, *t, /*front=*/true);
    }
  }
  ReconcileRunning(now, index, ready.running);
  UpdateReady(workers_[index]);

  Worker& wr = workers_[index];
  proto::Welcome welcome;
  welcome.worker_id = wr.worker_id;
  welcome.tier = wr.tier;
  welcome.heartbeat_ms = static_cast<uint32_t>(ToMs(config_.heartbeat_interval));
  welcome.liveness = config_.liveness;
  welcome.recommendations = Recommend(now, wr.tier, wr.caps, wr.services);
  SendToWorker(now, wr, Command::kWelcome, proto::Encode(welcome));
  std::string names;
  for (const proto::ServiceInfo& s : wr.manifest) names += (names.empty() ? "" : ",") + s.name;
  spdlog::info("worker {} '{}' {} tier {}{} slots {} services [{}]", wr.worker_id, wr.name,
               returning ? "re-registered" : "registered", wr.tier,
               wr.simulated ? " (simulated)" : "", wr.slots, names);
  RecordWorkerState(wr, "online");
  DispatchForWorker(now, index);
}

void Scheduler::ReconcileRunning(Time now, uint32_t index,
                                 const std::vector<proto::RunningTask>& running) {
  for (const proto::RunningTask& r : running) {
    Task* t = Find(r.task_id);
    if (t != nullptr && t->status == TaskStatus::kRunning &&
        t->worker == static_cast<int32_t>(index) && t->running_attempt == r.attempt) {
      workers_[index].running.push_back(r);  // same lease, new session
      continue;
    }
    if (t != nullptr && (t->status == TaskStatus::kQueued || t->status == TaskStatus::kFailed)) {
      // Requeued while the worker was away (or recovered after a broker restart) but still running
      // there: give the lease back instead of running it twice.
      Unqueue(*t);
      Start(now, *t, index, r.attempt, /*send=*/false);
      continue;
    }
    // Unknown, ended, or running elsewhere: it still occupies a slot until its RESULT arrives.
    workers_[index].running.push_back(r);
    if (t != nullptr && proto::IsTerminal(t->status)) {
      SendToWorker(now, workers_[index], Command::kCancel,
                   proto::Encode(proto::CancelAttempt{r.task_id, r.attempt, "task already ended"}));
    }
  }
}

void Scheduler::LoseWorker(Time now, uint32_t index, std::string_view reason) {
  Worker& w = workers_[index];
  if (!w.alive) return;
  spdlog::warn("worker {} '{}' lost ({}); {} task(s) go back to their queues", w.worker_id, w.name,
               reason, w.in_flight());
  DetachServices(w);
  w.alive = false;
  w.draining = false;
  w.offline_since = now;
  by_identity_.erase(w.identity);
  std::vector<proto::RunningTask> running = std::move(w.running);
  w.running.clear();
  for (const proto::RunningTask& r : running) {
    Task* t = Find(r.task_id);
    if (t == nullptr || t->status != TaskStatus::kRunning ||
        t->worker != static_cast<int32_t>(index) || t->running_attempt != r.attempt) {
      continue;
    }
    --services_[t->service].in_flight;
    t->worker = -1;
    ++t->requeues;
    ++counters_.requeued;
    ++services_[t->service].counters.requeued;
    if (t->requeues > config_.max_requeues) {
      t->error = "worker lost " + std::to_string(t->requeues) + " times while running this task";
      t->error_code = "worker_lost";
      Finish(now, *t, TaskStatus::kDead);
    } else {
      Enqueue(now, *t, /*front=*/true);
    }
  }
  RecordWorkerState(workers_[index], "offline");
}

void Scheduler::ForgetWorker(uint32_t index) {
  Worker& w = workers_[index];
  by_worker_id_.erase(w.worker_id);
  if (w.alive) by_identity_.erase(w.identity);
  w = Worker{};
  free_worker_slots_.push_back(index);
}

void Scheduler::OnWorkerHeartbeat(Time now, const std::string& identity,
                                  const proto::Heartbeat* report) {
  int32_t index = RegisteredWorker(identity);
  if (index < 0) return;
  Worker& w = workers_[index];
  Heard(now, w);
  if (report != nullptr) {
    bool load_changed = PerMille(report->load) != PerMille(w.report.load);
    w.report = *report;
    if (load_changed) UpdateReady(w);
  }
}

void Scheduler::OnWorkerProgress(Time now, const std::string& identity,
                                 const proto::Progress& progress) {
  int32_t index = RegisteredWorker(identity);
  if (index < 0) return;
  // Any traffic renews the worker's leases; progress is traffic that also names the task.
  Heard(now, workers_[index]);
  spdlog::debug("task {} attempt {} progress {:.2f} {}", ToString(progress.task_id),
                progress.attempt, progress.fraction, progress.message);
}

void Scheduler::OnWorkerManifest(Time now, const std::string& identity, proto::Manifest manifest) {
  int32_t index = RegisteredWorker(identity);
  if (index < 0) return;
  Worker& w = workers_[index];
  Heard(now, w);
  DetachServices(w);
  w.manifest = std::move(manifest.services);
  if (manifest.slots > 0) w.slots = manifest.slots;
  AttachServices(w);
  UpdateReady(w);
  std::string names;
  for (const proto::ServiceInfo& s : w.manifest) names += (names.empty() ? "" : ",") + s.name;
  spdlog::info("worker {} '{}' now provides [{}] with {} slots", w.worker_id, w.name, names,
               w.slots);
  RecordWorkerState(w, w.draining ? "draining" : "online");
  DispatchForWorker(now, static_cast<uint32_t>(index));
}

void Scheduler::OnWorkerDrain(Time now, const std::string& identity) {
  int32_t index = WorkerByIdentity(identity);
  if (index < 0) return;
  Worker& w = workers_[index];
  Heard(now, w);
  if (w.draining) return;
  RemoveFromReady(w);
  --tier_live_[w.tier];
  for (uint32_t s : w.services) --services_[s].active_providers;
  w.draining = true;
  spdlog::info("worker {} '{}' is draining with {} task(s) in flight", w.worker_id, w.name,
               w.in_flight());
  RecordWorkerState(w, "draining");
}

void Scheduler::OnWorkerDisconnect(Time now, const std::string& identity,
                                   const proto::Disconnect& bye) {
  int32_t index = WorkerByIdentity(identity);
  if (index < 0) return;
  Worker& w = workers_[index];
  spdlog::info("worker {} '{}' said goodbye: {}", w.worker_id, w.name,
               bye.reason.empty() ? "-" : bye.reason);
  LoseWorker(now, static_cast<uint32_t>(index), "disconnected");
}

void Scheduler::OnWorkerMalformed(Time now, const std::string& identity, const Status& why) {
  int32_t index = WorkerByIdentity(identity);
  if (index >= 0) Heard(now, workers_[index]);
  proto::Error e{0, std::string(StatusCodeName(why.code())), why.message(), {}, {}};
  output_->ToWorker(identity, Command::kError, proto::Encode(e));
}

void Scheduler::OnWorkerUnreachable(Time now, const std::string& identity) {
  int32_t index = WorkerByIdentity(identity);
  if (index >= 0) LoseWorker(now, static_cast<uint32_t>(index), "connection gone");
}

Status Scheduler::DrainWorker(Time now, const std::string& worker_id) {
  auto it = by_worker_id_.find(worker_id);
  if (it == by_worker_id_.end() || !workers_[it->second].alive) {
    return Status::NotFound("no live worker '" + worker_id + "'");
  }
  Worker& w = workers_[it->second];
  SendToWorker(now, w, Command::kDrain, {});
  OnWorkerDrain(now, w.identity);
  return Status::Ok();
}

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
      --services_[t->service].in_flight;
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
  services_[t.service].run_time.Record(run);
  history_.At(now).run_time.Record(run);
  ++counters_.completed;
  ++today_.completed;
  ++services_[t.service].counters.completed;
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
  ++services_[t.service].counters.failed;
  ++history_.At(now).failed;
  t.error = std::move(error);
  t.error_code = std::move(code);
  if (retryable && t.failures < t.max_attempts) {
    t.status = TaskStatus::kFailed;
    ++counters_.retried;
    ++services_[t.service].counters.retried;
    ++t.epoch;
    Time at = now + Backoff(t.failures);
    delayed_.Push({at, t.id, t.epoch});
    ++services_[t.service].delayed;
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
      ++services_[t.service].counters.dead;
      break;
    case TaskStatus::kCancelled:
      ++counters_.cancelled;
      ++services_[t.service].counters.cancelled;
      break;
    case TaskStatus::kExpired:
      ++counters_.expired;
      ++services_[t.service].counters.expired;
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
  SendToWorker(now, w, Command::kCancel,
               proto::Encode(proto::CancelAttempt{t.id, t.running_attempt, std::string(reason)}));
  --services_[t.service].in_flight;
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
  output_->ToClient(client, Command::kTaskInfo, proto::Encode(info));
}

void Scheduler::ReplyError(const std::string& client, uint64_t ref, const Status& status,
                           std::vector<std::string> available, std::string suggestion) {
  proto::Error e;
  e.ref = ref;
  e.code = std::string(StatusCodeName(status.code()));
  e.message = status.message();
  e.available_services = std::move(available);
  e.suggestion = std::move(suggestion);
  output_->ToClient(client, Command::kError, proto::Encode(e));
}

void Scheduler::Persist(const Task& t, WriteKind kind) {
  if (!durable_ || t.transient) return;
  TaskWrite w;
  w.kind = kind;
  TaskRecord& r = w.record;
  r.id = t.id;
  r.service = services_[t.service].name;
  if (kind == WriteKind::kInsert) {
    r.payload = t.payload;
    r.content_type = t.content_type;
  }
  r.priority = t.priority;
  r.max_attempts = t.max_attempts;
  r.timeout_ms = t.timeout_ms;
  r.idempotency_key = t.idempotency_key;
  r.min_tier = t.min_tier;
  r.min_gpu_memory_gb = t.min_gpu_memory_gb;
  r.status = t.status;
  r.attempts = t.attempts;
  r.failures = t.failures;
  r.requeues = t.requeues;
  r.worker_id = t.worker_id;
  if (t.status == TaskStatus::kCompleted) {
    r.result = t.result;
    r.result_content_type = t.result_content_type;
  }
  r.http_status = t.http_status;
  r.error = t.error;
  r.error_code = t.error_code;
  r.created_at = t.created_at;
  r.run_at = t.run_at;
  r.started_at = t.started_at;
  r.completed_at = t.completed_at;
  output_->Record(std::move(w));
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

// ---------------------------------------------------------------------------------------------------
// Services, queues and dispatch

uint32_t Scheduler::ServiceIndex(const std::string& name) {
  auto it = service_index_.find(name);
  if (it != service_index_.end()) return it->second;
  uint32_t index = static_cast<uint32_t>(services_.size());
  services_.emplace_back();
  Service& svc = services_.back();
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

bool Scheduler::HasProvider(uint32_t s) const {
  const Service& svc = services_[s];
  if (svc.active_providers > 0) return true;
  for (uint32_t tier = 1; tier <= svc.generic_max_tier; ++tier) {
    if (tier_live_[tier] > 0) return true;
  }
  return false;
}

std::vector<std::string> Scheduler::AvailableServices() const {
  std::vector<std::string> names;
  for (uint32_t s = 0; s < services_.size(); ++s) {
    if (HasProvider(s)) names.push_back(services_[s].name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

void Scheduler::Enqueue(Time now, Task& t, bool front) {
  Service& svc = services_[t.service];
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
  DispatchService(now, t.service);
}

void Scheduler::Unqueue(Task& t) {
  if (t.status == TaskStatus::kQueued) {
    --services_[t.service].queued;
  } else if (t.status == TaskStatus::kFailed) {
    --services_[t.service].delayed;
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
  auto consider = [&](const std::set<ReadyKey>& set) {
    int inspected = 0;
    for (const ReadyKey& k : set) {
      if (t.min_tier > 0 && k.tier > t.min_tier) break;  // sets are ordered by tier first
      if (best != nullptr && !(k < *best)) break;
      if (t.min_gpu_memory_gb > 0 && workers_[k.worker].caps.gpu_memory_gb < t.min_gpu_memory_gb) {
        if (++inspected >= kRequirementScanWorkers) break;
        continue;
      }
      best = &k;
      break;
    }
  };
  consider(svc.ready);
  for (uint32_t tier = 1; tier <= svc.generic_max_tier; ++tier) consider(tier_ready_[tier]);
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
  if (!w.alive || w.draining) return;
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
  Service& svc = services_[t.service];
  t.status = TaskStatus::kRunning;
  t.attempts = std::max(t.attempts, attempt);
  t.running_attempt = attempt;
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
  if (!send) return;

  proto::TaskAssignment a;
  a.task_id = t.id;
  a.attempt = attempt;
  a.service = svc.name;
  a.payload = t.payload;
  a.content_type = t.content_type;
  a.timeout_ms = t.timeout_ms;
  a.request = t.request;
  SendToWorker(now, w, Command::kTask, proto::Encode(a));
}

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
    auto it = idempotency_.find(submit.idempotency_key);
    if (it != idempotency_.end()) {
      if (const Task* first = Find(it->second)) {
        proto::Accepted a{submit.ref, first->id, first->status, true, false};
        output_->ToClientWhenDurable(client, Command::kAccepted, proto::Encode(a));
        return;
      }
    }
  }
  auto existing = FindService(submit.service);
  if (!existing && services_.size() >= kMaxServices) {
    return reject(Status::ResourceExhausted("too many distinct services"));
  }
  uint32_t s = existing ? *existing : ServiceIndex(submit.service);
  bool provided = HasProvider(s);
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
  Service& svc = services_[s];
  if (svc.queued + svc.delayed >= config_.max_queued_per_service) {
    ++svc.counters.rejected;
    return reject(Status::ResourceExhausted("queue for '" + submit.service + "' is full (" +
                                            std::to_string(config_.max_queued_per_service) +
                                            " tasks)"));
  }
  if (durable_ && !sync && !store_available_) {
    ++svc.counters.rejected;
    return reject(Status::Unavailable("the task store is unavailable; the task was not accepted"));
  }

  TaskId id(++last_task_id_);
  if (last_task_id_ < static_cast<uint64_t>(ToUnixUs(now))) {
    // Ids start at the current time in microseconds, so an in-memory broker never reuses ids after
    // a restart.
    last_task_id_ = static_cast<uint64_t>(ToUnixUs(now));
    id = TaskId(last_task_id_);
  }
  auto [it, inserted] = tasks_.try_emplace(id);
  RMA_CHECK(inserted) << "task id reused: " << ToString(id);
  Task& t = it->second;
  t.id = id;
  t.service = s;
  t.priority = submit.priority;
  t.min_tier = submit.min_tier;
  t.min_gpu_memory_gb = submit.min_gpu_memory_gb;
  t.transient = sync;
  t.max_attempts =
      submit.max_attempts > 0 ? submit.max_attempts : (sync ? 1 : config_.default_max_attempts);
  t.timeout_ms = static_cast<uint32_t>(ToMs(timeout));
  t.created_at = now;
  t.run_at = submit.run_at_ms > 0 ? std::max(now, FromUnixMs(submit.run_at_ms)) : now;
  t.payload = std::move(submit.payload);
  t.content_type = std::move(submit.content_type);
  t.idempotency_key = sync ? std::string() : std::move(submit.idempotency_key);
  t.request = std::move(submit.request);
  if (!t.idempotency_key.empty()) idempotency_[t.idempotency_key] = id;

  ++counters_.submitted;
  ++today_.submitted;
  ++svc.counters.submitted;
  ++history_.At(now).submitted;
  submission_rate_.Add(now);
  Persist(t, WriteKind::kInsert);

  if (sync) {
    t.waiters.push_back(Waiter{client, submit.ref, true});
    // A synchronous call has one budget for queueing and running: when it is spent the caller gets
    // the task as it stands (the gateway answers 504) and the call is cancelled.
    waits_.Push({now + timeout, id, client, submit.ref});
  } else {
    proto::Accepted a{submit.ref, id, TaskStatus::kQueued, false, !provided};
    output_->ToClientWhenDurable(client, Command::kAccepted, proto::Encode(a));
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

bool Scheduler::OnGet(Time now, const std::string& client, const proto::Get& get) {
  Task* t = Find(get.task_id);
  if (t == nullptr) return false;
  if (proto::IsTerminal(t->status) || get.wait_ms == 0) {
    ReplyTask(client, get.ref, *t);
    return true;
  }
  Duration wait = std::min<Duration>(Ms(get.wait_ms), config_.max_wait);
  t->waiters.push_back(Waiter{client, get.ref, false});
  waits_.Push({now + wait, t->id, client, get.ref});
  return true;
}

bool Scheduler::OnCancel(Time now, const std::string& client, const proto::CancelTask& cancel) {
  Task* t = Find(cancel.task_id);
  if (t == nullptr) return false;
  if (!proto::IsTerminal(t->status)) {
    if (t->status == TaskStatus::kRunning) {
      CancelRunning(now, *t, "cancelled");
    } else {
      Unqueue(*t);
    }
    t->error = "cancelled by a client";
    t->error_code = "cancelled";
    Finish(now, *t, TaskStatus::kCancelled);
    spdlog::debug("task {} cancelled", ToString(t->id));
  }
  // The answer is the task as it now stands: cancelled, or the state it had already ended in.
  if (const Task* after = Find(cancel.task_id)) ReplyTask(client, cancel.ref, *after);
  return true;
}

void Scheduler::OnList(Time, const std::string& client, const proto::List& list) {
  std::optional<TaskStatus> status;
  if (!list.status.empty()) {
    status = proto::ParseTaskStatus(list.status);
    if (!status) {
      return ReplyError(client, list.ref,
                        Status::InvalidArgument("unknown status '" + list.status + "'"));
    }
  }
  std::optional<uint32_t> service;
  if (!list.service.empty()) {
    service = FindService(list.service);
    if (!service) {
      output_->ToClient(client, Command::kTaskList, proto::Encode(proto::TaskList{list.ref, {}}));
      return;
    }
  }
  std::vector<const Task*> matches;
  for (const auto& [id, t] : tasks_) {
    if (service && t.service != *service) continue;
    if (status && t.status != *status) continue;
    matches.push_back(&t);
  }
  size_t limit = std::min<size_t>(list.limit == 0 ? 100 : list.limit, matches.size());
  std::partial_sort(matches.begin(), matches.begin() + static_cast<std::ptrdiff_t>(limit),
                    matches.end(), [](const Task* a, const Task* b) { return a->id > b->id; });
  proto::TaskList reply;
  reply.ref = list.ref;
  for (size_t i = 0; i < limit; ++i)
    reply.tasks.push_back(View(*matches[i], /*with_result=*/false));
  output_->ToClient(client, Command::kTaskList, proto::Encode(reply));
}

void Scheduler::OnClientHeartbeat(Time, const std::string& client) {
  output_->ToClient(client, Command::kHeartbeat, {});
}

void Scheduler::OnClientMalformed(Time, const std::string& client, uint64_t ref,
                                  const Status& why) {
  ++counters_.rejected;
  ReplyError(client, ref, why);
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
    --services_[t->service].delayed;
    Enqueue(now, *t, /*front=*/false);
  }
  while (!timeouts_.empty() && timeouts_.top().at <= now) {
    TimedEntry e = timeouts_.top();
    timeouts_.Pop();
    Task* t = Find(e.id);
    if (t == nullptr || t->status != TaskStatus::kRunning || t->running_attempt != e.tag) continue;
    std::string error = "attempt " + std::to_string(e.tag) + " timed out after " +
                        std::to_string(t->timeout_ms) + " ms";
    CancelRunning(now, *t, "timeout");
    FailAttempt(now, *t, std::move(error), "timeout", /*retryable=*/true);
  }
  while (!expiry_.empty() && expiry_.top().at <= now) {
    TimedEntry e = expiry_.top();
    expiry_.Pop();
    Task* t = Find(e.id);
    if (t == nullptr || t->epoch != e.tag || t->status != TaskStatus::kQueued) continue;
    Unqueue(*t);
    t->error = "waited longer than " + std::to_string(ToMs(config_.max_queue_time) / 1000) +
               " s without being started" + (HasProvider(t->service) ? "" : " (no provider)");
    t->error_code = "queue_timeout";
    Finish(now, *t, TaskStatus::kExpired);
  }
  while (!waits_.empty() && waits_.top().at <= now) {
    WaitEntry e = waits_.top();
    waits_.Pop();
    Task* t = Find(e.id);
    if (t == nullptr) continue;
    auto it = std::find_if(t->waiters.begin(), t->waiters.end(),
                           [&](const Waiter& w) { return w.client == e.client && w.ref == e.ref; });
    if (it == t->waiters.end()) continue;
    bool sync = it->sync;
    t->waiters.erase(it);
    ReplyTask(e.client, e.ref, *t);
    if (sync && !proto::IsTerminal(t->status)) {
      // Nobody waits for this call any more: stop it rather than run it for nothing.
      if (t->status == TaskStatus::kRunning) {
        CancelRunning(now, *t, "caller gave up");
      } else {
        Unqueue(*t);
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
        SendToWorker(now, w, Command::kHeartbeat, {});
      }
    } else if (now - w.offline_since > config_.offline_retention) {
      ForgetWorker(i);
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// Restore and queries

void Scheduler::Restore(Time now, std::vector<TaskRecord> records, uint64_t max_task_id) {
  last_task_id_ = std::max(last_task_id_, max_task_id);
  // Oldest first, so requeued tasks keep their FIFO order within each priority.
  std::sort(records.begin(), records.end(),
            [](const TaskRecord& a, const TaskRecord& b) { return a.id < b.id; });
  size_t requeued = 0;
  for (TaskRecord& r : records) {
    auto [it, inserted] = tasks_.try_emplace(r.id);
    if (!inserted) continue;
    Task& t = it->second;
    t.id = r.id;
    t.service = ServiceIndex(r.service);
    t.priority = std::min<uint32_t>(r.priority, 9);
    t.min_tier = r.min_tier;
    t.min_gpu_memory_gb = r.min_gpu_memory_gb;
    t.max_attempts = r.max_attempts;
    t.timeout_ms = r.timeout_ms;
    t.attempts = r.attempts;
    t.failures = r.failures;
    t.requeues = r.requeues;
    t.worker_id = r.worker_id;
    t.created_at = r.created_at;
    t.run_at = r.run_at;
    t.started_at = r.started_at;
    t.completed_at = r.completed_at;
    t.payload = std::move(r.payload);
    t.content_type = std::move(r.content_type);
    t.idempotency_key = std::move(r.idempotency_key);
    t.result = std::move(r.result);
    t.result_content_type = std::move(r.result_content_type);
    t.http_status = r.http_status;
    t.error = std::move(r.error);
    t.error_code = std::move(r.error_code);
    t.status = r.status;
    if (!t.idempotency_key.empty()) idempotency_[t.idempotency_key] = t.id;
    if (proto::IsTerminal(t.status)) {
      finished_.emplace_back(t.id, t.completed_at);
      continue;
    }
    ++requeued;
    if (t.run_at > now) {
      t.status = TaskStatus::kQueued;
      t.queued_at = now;
      delayed_.Push({t.run_at, t.id, t.epoch});
      ++services_[t.service].delayed;
    } else {
      Enqueue(now, t, /*front=*/false);
    }
  }
  spdlog::info("restored {} task(s), {} unfinished back in their queues", records.size(), requeued);
}

Scheduler::Task* Scheduler::Find(TaskId id) {
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : &it->second;
}

const Scheduler::Task* Scheduler::FindTask(TaskId id) const {
  auto it = tasks_.find(id);
  return it == tasks_.end() ? nullptr : &it->second;
}

size_t Scheduler::total_queued() const {
  size_t n = 0;
  for (const Service& s : services_) n += s.queued + s.delayed;
  return n;
}

size_t Scheduler::total_in_flight() const {
  size_t n = 0;
  for (const Service& s : services_) n += s.in_flight;
  return n;
}

Duration Scheduler::OldestWait(Time now, uint32_t s) const {
  const Service& svc = services_[s];
  Duration oldest{0};
  for (const auto& q : svc.queue) {
    for (const QueueEntry& e : q) {
      const Task* t = FindTask(e.id);
      if (t == nullptr || t->epoch != e.epoch || t->status != TaskStatus::kQueued) continue;
      oldest = std::max(oldest, now - t->queued_at);
      break;  // FIFO within a priority: the first live entry is the oldest of this priority
    }
  }
  return oldest;
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
    size_t queued = s ? services_[*s].queued + services_[*s].delayed : 0;
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

proto::TaskView Scheduler::View(const Task& t, bool with_result) const {
  proto::TaskView v;
  v.task_id = t.id;
  v.service = services_[t.service].name;
  v.status = t.status;
  v.priority = t.priority;
  v.attempts = t.attempts;
  v.max_attempts = t.max_attempts;
  v.worker_id = t.worker_id;
  if (with_result) v.result = t.result;
  v.content_type = t.result_content_type;
  v.http_status = t.http_status;
  v.error = t.error;
  v.error_code = t.error_code;
  v.waiting_for_provider = t.status == TaskStatus::kQueued && !HasProvider(t.service);
  v.idempotency_key = t.idempotency_key;
  v.created_at_ms = ToUnixMs(t.created_at);
  v.started_at_ms = t.started_at.time_since_epoch().count() > 0 ? ToUnixMs(t.started_at) : 0;
  v.completed_at_ms = t.completed_at.time_since_epoch().count() > 0 ? ToUnixMs(t.completed_at) : 0;
  return v;
}

}  // namespace rma::broker
