// The scheduler's worker registry: registration and re-registration, leases kept across reconnects,
// liveness, manifests, drain, and the ready sets that index workers with a free slot. See
// scheduler.h.
#include "broker/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>

namespace rma::broker {

using proto::Command;
using proto::TaskStatus;

namespace {
// Constant time: the secret proves who a worker is.
bool SecretsEqual(const std::string& want, const std::string& got) {
  unsigned diff = static_cast<unsigned>(want.size() ^ got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    diff |= static_cast<unsigned>(got[i] ^ want[i % want.size()]);
  }
  return diff == 0;
}
uint32_t PerMille(double x) { return static_cast<uint32_t>(std::clamp(x, 0.0, 60.0) * 1000.0); }
// "rag,llm(2 models)" for the log: a model list may be long, its count is what the line needs.
std::string ManifestNames(const std::vector<proto::ServiceInfo>& manifest) {
  std::string names;
  for (const proto::ServiceInfo& s : manifest) {
    names += (names.empty() ? "" : ",") + s.name;
    if (!s.models.empty()) names += "(" + std::to_string(s.models.size()) + " models)";
  }
  return names;
}
}  // namespace

// ---------------------------------------------------------------------------------------------------
// Registry

int32_t Scheduler::RegisteredWorker(const std::string& identity) {
  int32_t index = WorkerByIdentity(identity);
  if (index < 0) {
    // A session the broker does not know (it restarted, or declared the worker dead): register
    // again.
    output_->ToWorker(identity, proto::Disconnect{"not registered: send READY", true});
  }
  return index;
}

void Scheduler::RefuseUnregistered(const std::string& identity, std::string_view command,
                                   TaskId task, uint32_t attempt) {
  // ERROR says what was refused; the DISCONNECT that follows lets an honest worker whose session
  // the broker forgot (a restart) register again and send its results after the WELCOME.
  Refuse(Refusal::kUnregistered);
  output_->ToWorker(
      identity,
      proto::Error{0,
                   std::string(StatusCodeName(StatusCode::kUnauthenticated)),
                   std::string(command) + " for attempt " + std::to_string(attempt) + " of task " +
                       ToString(task) + " from a session that is not registered",
                   {},
                   {}});
  output_->ToWorker(identity, proto::Disconnect{"not registered: send READY", true});
}

void Scheduler::RefuseNotLeaseHolder(Time now, Worker& w, TaskId task, uint32_t attempt) {
  Refuse(Refusal::kNotLeaseHolder);
  SendToWorker(now, w,
               proto::Error{0,
                            std::string(StatusCodeName(StatusCode::kPermissionDenied)),
                            "attempt " + std::to_string(attempt) + " of task " + ToString(task) +
                                " is not leased to this worker",
                            {},
                            {}});
}

int32_t Scheduler::WorkerByIdentity(const std::string& identity) const {
  auto it = by_identity_.find(identity);
  return it == by_identity_.end() ? -1 : static_cast<int32_t>(it->second);
}

void Scheduler::Heard(Time now, Worker& w) { w.last_heard = now; }

void Scheduler::SendToWorker(Time now, Worker& w, const proto::ToWorkerMessage& message) {
  w.last_sent = now;
  output_->ToWorker(w.identity, message);
}

void Scheduler::RemoveFromReady(Worker& w) {
  if (w.in_quarantined_ready) {
    for (uint32_t s : w.services) services_[s].quarantined_ready.erase(w.key);
    w.in_quarantined_ready = false;
  }
  if (!w.in_ready) return;
  tier_ready_[w.tier].erase(w.key);
  for (uint32_t s : w.services) services_[s].ready.erase(w.key);
  for (ModelService* m : w.model_sets) m->ready.erase(w.key);
  w.in_ready = false;
}

void Scheduler::UpdateReady(Worker& w) {
  RemoveFromReady(w);
  if (!w.alive || w.withdrawn() || w.in_flight() >= EffectiveSlots(w)) return;
  // Quarantined or banned: no client tasks. A quarantined worker may still run verification
  // replicas (PickWorker), its results compared like any other's.
  const std::optional<uint32_t> band = reputation_.RoutingBand(w.reputation_key);
  if (!band && reputation_.State(w.reputation_key) != WorkerState::kQuarantined) return;
  w.key = ReadyKey{w.tier,
                   band.value_or(4),
                   w.in_flight() * 1000 / w.slots,
                   std::min<uint32_t>(PerMille(w.report.load), 65535),
                   w.lru,
                   static_cast<uint32_t>(&w - workers_.data())};
  if (!band) {
    for (uint32_t s : w.services) services_[s].quarantined_ready.insert(w.key);
    w.in_quarantined_ready = true;
    return;
  }
  tier_ready_[w.tier].insert(w.key);
  for (uint32_t s : w.services) services_[s].ready.insert(w.key);
  for (ModelService* m : w.model_sets) m->ready.insert(w.key);
  w.in_ready = true;
}

void Scheduler::AttachServices(Worker& w) {
  w.services.clear();
  w.model_sets.clear();
  for (const proto::ServiceInfo& info : w.manifest) {
    if (std::optional<uint32_t> s = ServiceIndex(info.name)) {
      w.services.push_back(*s);
      // ListModels counted this manifest, so every entry exists.
      for (const std::string& model : info.models) {
        ModelService& ms = models_.at(model).services.at(info.name);
        ++ms.providers;
        if (!w.withdrawn()) ++ms.active_providers;
        w.model_sets.push_back(&ms);
      }
    } else {
      // The service table is full of names other workers provide: this one is not offered.
      Refuse(Refusal::kTooManyServices);
      spdlog::warn("worker {} '{}': service '{}' not offered: the service table is full ({})",
                   w.worker_id, w.name, info.name, config_.max_services);
    }
  }
  std::sort(w.services.begin(), w.services.end());
  w.services.erase(std::unique(w.services.begin(), w.services.end()), w.services.end());
  for (uint32_t s : w.services) {
    ++services_[s].providers;
    if (!w.withdrawn()) ++services_[s].active_providers;
  }
  if (!w.withdrawn()) ++tier_live_[w.tier];
}

void Scheduler::DetachServices(Worker& w) {
  RemoveFromReady(w);
  for (uint32_t s : w.services) {
    --services_[s].providers;
    if (!w.withdrawn()) --services_[s].active_providers;
  }
  for (ModelService* m : w.model_sets) {
    --m->providers;
    if (!w.withdrawn()) --m->active_providers;
  }
  if (!w.withdrawn()) --tier_live_[w.tier];
  w.services.clear();
  w.model_sets.clear();
}

void Scheduler::ListModels(Time now, const Worker& w, int delta) {
  for (const proto::ServiceInfo& info : w.manifest) {
    for (const std::string& name : info.models) {
      if (delta > 0) {
        auto [it, inserted] = models_.try_emplace(name);
        if (inserted) it->second.first_seen = now;
        ++it->second.listed;
        ++it->second.services[info.name].listed;
        continue;
      }
      auto it = models_.find(name);
      RMA_CHECK(it != models_.end()) << "model '" << name << "' unlisted but never listed";
      Model& m = it->second;
      auto ms = m.services.find(info.name);
      RMA_CHECK(ms != m.services.end() && ms->second.listed > 0 && m.listed > 0)
          << "model '" << name << "' of service '" << info.name << "' unlisted twice";
      --m.listed;
      if (--ms->second.listed == 0) {
        // Its live providers are a subset of its listings, detached first.
        RMA_CHECK(ms->second.providers == 0 && ms->second.ready.empty())
            << "model '" << name << "' forgotten with live providers";
        m.services.erase(ms);
      }
      if (m.listed == 0) models_.erase(it);
    }
  }
}

void Scheduler::SetManifest(Time now, Worker& w, std::vector<proto::ServiceInfo> manifest) {
  ListModels(now, w, -1);
  KeepAllowedServices(w, &manifest);
  NormaliseManifest(&manifest);
  w.manifest = std::move(manifest);
  ListModels(now, w, +1);
}

void Scheduler::NormaliseManifest(std::vector<proto::ServiceInfo>* services) {
  std::set<std::string> seen;
  std::vector<proto::ServiceInfo> out;
  out.reserve(services->size());
  for (proto::ServiceInfo& info : *services) {
    if (!seen.insert(info.name).second) continue;
    std::sort(info.models.begin(), info.models.end());
    info.models.erase(std::unique(info.models.begin(), info.models.end()), info.models.end());
    out.push_back(std::move(info));
  }
  *services = std::move(out);
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
  // Who may connect at all (the worker token, later keys) is decided at the handshake, before any
  // message arrives (broker_loop.cc, the ZAP handler). What a registered session may claim is
  // decided here.
  auto refuse = [&](std::optional<Refusal> why, const std::string& reason) {
    if (why) Refuse(*why);
    spdlog::warn("refused worker {} ({}): {}", ready.worker_id, ready.name, reason);
    output_->ToWorker(identity, proto::Disconnect{reason, false});
  };
  if (ready.simulated && !config_.allow_simulated) {
    return refuse(std::nullopt,
                  "simulated workers are not allowed (start the broker with --allow-simulated)");
  }
  const std::string reputation_key =
      ready.worker_key.empty() ? "id:" + ready.worker_id : ready.worker_key;
  if (reputation_.State(reputation_key) == WorkerState::kBanned) {
    return refuse(Refusal::kBanned, "this worker's credential is banned from the pool");
  }
  if (ready.services.size() > config_.max_services_per_worker) {
    return refuse(Refusal::kTooManyServices,
                  "a worker may offer at most " + std::to_string(config_.max_services_per_worker) +
                      " services (this one listed " + std::to_string(ready.services.size()) + ")");
  }
  // A worker id already live on another session: only the same worker (it proves it with its
  // secret) may take it over — a reconnect after its network dropped. Anybody else would take its
  // leases and its tasks.
  auto known = by_worker_id_.find(ready.worker_id);
  if (known != by_worker_id_.end()) {
    const Worker& live = workers_[known->second];
    if (live.alive && live.identity != identity &&
        (live.secret.empty() || !SecretsEqual(live.secret, ready.worker_secret))) {
      return refuse(Refusal::kWorkerIdInUse,
                    "worker id '" + ready.worker_id +
                        "' is in use by a live session (a second process with the same data "
                        "directory?)");
    }
  }

  // This session was another worker until now: that one is finished.
  if (int32_t other = WorkerByIdentity(identity);
      other >= 0 && workers_[other].worker_id != ready.worker_id) {
    LoseWorker(now, static_cast<uint32_t>(other), "re-registered under another worker id");
    ForgetWorker(static_cast<uint32_t>(other));
    known = by_worker_id_.find(ready.worker_id);
  }
  // A worker id arriving on a new connection replaces its old session; its unfinished work is
  // settled by ReconcileRunning below.
  uint32_t index;
  bool returning = known != by_worker_id_.end();
  if (returning) {
    index = known->second;
    Worker& old = workers_[index];
    if (old.alive) {
      DetachServices(old);
      by_identity_.erase(old.identity);
    }
  } else {
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
  const bool previous_settled = returning && Settled(now, workers_[index]);
  Worker& w = workers_[index];
  w.running.clear();
  w.in_use = true;
  w.alive = true;
  w.draining = false;
  w.identity = identity;
  w.worker_id = ready.worker_id;
  if (!ready.worker_secret.empty()) w.secret = std::move(ready.worker_secret);
  w.name = ready.name.empty() ? ready.worker_id : ready.name;
  w.agent_version = ready.agent_version;
  w.curve_key = std::move(ready.worker_key);
  w.reputation_key = reputation_key;
  w.caps = std::move(ready.capabilities);
  w.simulated = ready.simulated;
  w.tier = AssignTier(w.caps, config_.tiers);
  // A credential may cap the tier (a "GPU" that never proved one) and restrict the services.
  if (ready.tier_cap > 0 && w.tier < ready.tier_cap) w.tier = ready.tier_cap;
  w.account = std::move(ready.account);
  w.allowed_services = std::move(ready.allowed_services);
  w.reads_packed = ready.packed;
  NoteConnection(&w.connections, now, "connected",
                 returning ? "registered again (agent " + w.agent_version + ")"
                           : "registered (agent " + w.agent_version + ")");
  SetManifest(now, w, std::move(ready.services));
  w.slots = ready.slots;
  w.report = proto::Heartbeat{};
  w.report.ram_available_gb = w.caps.ram_available_gb;
  w.registered_at = now;
  w.last_heard = now;
  w.last_sent = now;
  by_identity_[identity] = index;
  AttachServices(w);

  if (ready.running.size() > config_.max_running_per_ready) {
    ready.running.resize(config_.max_running_per_ready);  // more than it could ever have held
  }
  // Leases of the previous session that the worker does not report any more are lost.
  for (const proto::RunningTask& r : previous) {
    bool still = std::any_of(ready.running.begin(), ready.running.end(), [&](const auto& x) {
      return x.task_id == r.task_id && x.attempt == r.attempt;
    });
    if (still) continue;
    Task* t = Find(r.task_id);
    if (t != nullptr && t->status == TaskStatus::kRunning &&
        t->worker == static_cast<int32_t>(index) && t->running_attempt == r.attempt) {
      --services_[t->service_index].in_flight;
      t->worker = -1;
      Requeue(now, *t, previous_settled, "lost across a reconnect");
    }
  }
  ReconcileRunning(now, index, ready.running);
  UpdateReady(workers_[index]);

  Worker& wr = workers_[index];
  proto::Welcome welcome;
  welcome.worker_id = wr.worker_id;
  welcome.tier = wr.tier;
  welcome.packed = true;  // this broker reads packed frames from anybody
  welcome.heartbeat_ms = static_cast<uint32_t>(ToMs(config_.heartbeat_interval));
  welcome.liveness = config_.liveness;
  welcome.recommendations = Recommend(now, wr.tier, wr.caps, wr.services);
  SendToWorker(now, wr, std::move(welcome));
  // Still drained by an admin: say so again on the new session.
  if (wr.paused) SendToWorker(now, wr, proto::Bodyless{Command::kDrain});
  spdlog::info("worker {} '{}' {} tier {}{} slots {} services [{}]", wr.worker_id, wr.name,
               returning ? "re-registered" : "registered", wr.tier,
               wr.simulated ? " (simulated)" : "", wr.slots, ManifestNames(wr.manifest));
  RecordWorkerState(wr, "online");
  DispatchForWorker(now, index);
}

void Scheduler::ReconcileRunning(Time now, uint32_t index,
                                 const std::vector<proto::RunningTask>& running) {
  Worker& w = workers_[index];
  for (const proto::RunningTask& r : running) {
    Task* t = Find(r.task_id);
    if (t != nullptr && t->status == TaskStatus::kRunning &&
        t->worker == static_cast<int32_t>(index) && t->running_attempt == r.attempt) {
      w.running.push_back(r);  // same lease, new session
      continue;
    }
    // Only this worker's own latest attempt is given back: a READY cannot claim a lease that was
    // never its own.
    const bool own = t != nullptr && t->worker_id == w.worker_id && r.attempt == t->attempts;
    if (own && (t->status == TaskStatus::kQueued || t->status == TaskStatus::kFailed)) {
      // Requeued while the worker was away (or recovered after a broker restart) but still running
      // there: give the lease back instead of running it twice.
      Unqueue(now, *t);
      Start(now, *t, index, r.attempt, /*send=*/false);
      continue;
    }
    if (t != nullptr && !own && !proto::IsTerminal(t->status)) {
      Refuse(Refusal::kForeignAttempt);
      spdlog::warn("worker {} '{}' listed attempt {} of task {} that is not its own", w.worker_id,
                   w.name, r.attempt, ToString(r.task_id));
    }
    // Ended, unknown or not its own: it should stop. Nothing is leased, so its result (if it sends
    // one) will be refused.
    SendToWorker(now, w,
                 proto::CancelAttempt{r.task_id, r.attempt,
                                      t != nullptr && proto::IsTerminal(t->status)
                                          ? "task already ended"
                                          : "this attempt is not leased to this worker"});
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
  NoteConnection(&w.connections, now, "disconnected", reason);
  by_identity_.erase(w.identity);
  std::vector<proto::RunningTask> running = std::move(w.running);
  w.running.clear();
  bool abandoned = false;
  for (const proto::RunningTask& r : running) {
    Task* t = Find(r.task_id);
    if (t == nullptr || t->status != TaskStatus::kRunning ||
        t->worker != static_cast<int32_t>(index) || t->running_attempt != r.attempt) {
      continue;
    }
    --services_[t->service_index].in_flight;
    t->worker = -1;
    abandoned = true;
    CloseAttempt(&t->attempt_log, now, "worker_lost", "worker_lost", std::string(reason));
    Requeue(now, *t, Settled(now, w), reason);
  }
  // One abandonment per lost session, however many attempts it held: a machine that crashes with
  // eight tasks is one failure, not eight (offline now: nothing to re-place in routing).
  if (abandoned) (void)reputation_.OnAbandoned(now, w.reputation_key, w.account);
  RecordWorkerState(workers_[index], "offline");
}

void Scheduler::ForgetWorker(uint32_t index) {
  Worker& w = workers_[index];
  by_worker_id_.erase(w.worker_id);
  if (w.alive) {
    DetachServices(w);
    by_identity_.erase(w.identity);
  }
  ListModels(Time{}, w, -1);
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

Scheduler::Task* Scheduler::HeldAttempt(Time now, const std::string& identity,
                                        std::string_view command, TaskId task, uint32_t attempt,
                                        int32_t* index) {
  *index = WorkerByIdentity(identity);
  if (*index < 0) {
    RefuseUnregistered(identity, command, task, attempt);
    return nullptr;
  }
  // Any traffic renews the worker's leases, this too; only the lease holder may speak of a task.
  Heard(now, workers_[*index]);
  Task* t = Find(task);
  if (t == nullptr || t->status != TaskStatus::kRunning || t->worker != *index ||
      t->running_attempt != attempt) {
    return nullptr;
  }
  return t;
}

void Scheduler::OnWorkerProgress(Time now, const std::string& identity,
                                 const proto::Progress& progress) {
  int32_t index = -1;
  Task* t = HeldAttempt(now, identity, "PROGRESS", progress.task_id, progress.attempt, &index);
  if (t == nullptr) {
    if (index >= 0) RefuseNotLeaseHolder(now, workers_[index], progress.task_id, progress.attempt);
    return;
  }
  t->progress = progress.fraction;
  t->progress_message = progress.message;
  NotifyWatchers(now, *t);
  spdlog::debug("task {} attempt {} progress {:.2f} {}", ToString(progress.task_id),
                progress.attempt, progress.fraction, progress.message);
}

void Scheduler::OnWorkerPartial(Time now, const std::string& identity, proto::Partial partial) {
  int32_t index = -1;
  Task* t = HeldAttempt(now, identity, "PARTIAL", partial.task_id, partial.attempt, &index);
  if (t == nullptr) {
    // Expected for the last chunks of an attempt that was just cancelled or lost its lease: they
    // are dropped (an ERROR per chunk would only add to the flood).
    if (index >= 0) Refuse(Refusal::kNotLeaseHolder);
    return;
  }
  // A verified service's output is held back until its result: whether a result is sampled is
  // decided when it arrives, and a sampled result reaches nobody before another worker agreed (a
  // liar streaming its answer would otherwise bypass verification).
  if (services_[t->service_index].verify) return;
  if (partial.seq != t->stream_seq) {
    Refuse(Refusal::kStreamOutOfOrder);
    return;
  }
  ++t->stream_seq;
  for (const Waiter& waiter : t->waiters) {
    if (!waiter.sync && !waiter.watch) continue;
    proto::CallPartial out;
    out.ref = waiter.ref;
    out.task_id = t->id;
    out.seq = partial.seq;
    out.data = partial.data;  // shared, not copied
    out.http_status = partial.http_status;
    out.content_type = partial.content_type;
    out.headers = partial.headers;
    output_->ToClient(waiter.client, out);
  }
}

void Scheduler::OnWorkerManifest(Time now, const std::string& identity, proto::Manifest manifest) {
  int32_t index = RegisteredWorker(identity);
  if (index < 0) return;
  Worker& w = workers_[index];
  Heard(now, w);
  if (manifest.services.size() > config_.max_services_per_worker) {
    Refuse(Refusal::kTooManyServices);
    SendToWorker(now, w,
                 proto::Error{0,
                              std::string(StatusCodeName(StatusCode::kResourceExhausted)),
                              "a worker may offer at most " +
                                  std::to_string(config_.max_services_per_worker) +
                                  " services; the manifest was not taken",
                              {},
                              {}});
    return;
  }
  DetachServices(w);
  SetManifest(now, w, std::move(manifest.services));
  if (manifest.slots > 0) w.slots = manifest.slots;
  AttachServices(w);
  UpdateReady(w);
  spdlog::info("worker {} '{}' now provides [{}] with {} slots", w.worker_id, w.name,
               ManifestNames(w.manifest), w.slots);
  RecordWorkerState(w, w.withdrawn() ? "draining" : "online");
  DispatchForWorker(now, static_cast<uint32_t>(index));
}

void Scheduler::OnWorkerDrain(Time now, const std::string& identity) {
  int32_t index = WorkerByIdentity(identity);
  if (index < 0) return;
  Worker& w = workers_[index];
  Heard(now, w);
  if (w.draining) return;
  SetWithdrawn(w, /*draining=*/true, w.paused);
  spdlog::info("worker {} '{}' is draining with {} task(s) in flight", w.worker_id, w.name,
               w.in_flight());
  RecordWorkerState(w, "draining");
}

void Scheduler::SetWithdrawn(Worker& w, bool draining, bool paused) {
  const bool was = w.withdrawn();
  w.draining = draining;
  w.paused = paused;
  if (!w.alive || was == w.withdrawn()) return;
  const int delta = w.withdrawn() ? -1 : 1;
  tier_live_[w.tier] += delta;
  for (uint32_t s : w.services) services_[s].active_providers += delta;
  for (ModelService* m : w.model_sets) m->active_providers += delta;
  UpdateReady(w);
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
  output_->ToWorker(identity, std::move(e));
}

void Scheduler::OnWorkerUnreachable(Time now, const std::string& identity) {
  int32_t index = WorkerByIdentity(identity);
  if (index >= 0) LoseWorker(now, static_cast<uint32_t>(index), "connection gone");
}

size_t Scheduler::RevokeWorkerKeys(Time now,
                                   const std::function<bool(const std::string&)>& admitted) {
  size_t revoked = 0;
  for (uint32_t i = 0; i < workers_.size(); ++i) {
    Worker& w = workers_[i];
    if (!w.alive || w.curve_key.empty() || admitted(w.curve_key)) continue;
    SendToWorker(now, w,
                 proto::Disconnect{"this worker's key is no longer admitted by the pool", false});
    LoseWorker(now, i, "key revoked");
    ++revoked;
  }
  return revoked;
}

size_t Scheduler::CapWorkerTier(Time now, const std::string& key, uint32_t tier_cap) {
  size_t changed = 0;
  for (uint32_t i = 0; i < workers_.size(); ++i) {
    Worker& w = workers_[i];
    if (!w.alive || key.empty() || w.curve_key != key) continue;
    uint32_t tier = AssignTier(w.caps, config_.tiers);
    if (tier_cap > 0 && tier < tier_cap) tier = tier_cap;
    if (tier == w.tier) continue;
    spdlog::warn("worker {} '{}': an admin capped its credential's tier at {}: tier {} -> {}",
                 w.worker_id, w.name, tier_cap, w.tier, tier);
    // Out of the tier's counts and ready sets, and back in under the new tier.
    DetachServices(w);
    w.tier = tier;
    AttachServices(w);
    UpdateReady(w);
    RecordWorkerState(w, w.withdrawn() ? "draining" : "online");
    DispatchForWorker(now, i);
    ++changed;
  }
  return changed;
}

void Scheduler::KeepAllowedServices(const Worker& w, std::vector<proto::ServiceInfo>* services) {
  if (w.allowed_services.empty()) return;
  const auto& allowed = w.allowed_services;
  std::erase_if(*services, [&](const proto::ServiceInfo& s) {
    const bool keep = std::find(allowed.begin(), allowed.end(), s.name) != allowed.end();
    if (!keep) {
      spdlog::warn("worker {} offers {}, which its credential does not allow; ignored", w.worker_id,
                   s.name);
    }
    return !keep;
  });
}

std::string Scheduler::LiveWorkerKey(const std::string& worker_id) const {
  auto it = by_worker_id_.find(worker_id);
  if (it == by_worker_id_.end() || !workers_[it->second].alive) return "";
  return workers_[it->second].curve_key;
}

bool Scheduler::WorkerReadsPacked(const std::string& identity) const {
  const int32_t i = WorkerByIdentity(identity);
  return i >= 0 && workers_[static_cast<uint32_t>(i)].reads_packed;
}

std::set<std::string> Scheduler::LiveWorkerKeys() const {
  std::set<std::string> keys;
  for (const Worker& w : workers_) {
    if (w.alive && !w.curve_key.empty()) keys.insert(w.curve_key);
  }
  return keys;
}

Status Scheduler::DrainWorker(Time now, const std::string& worker_id) {
  auto it = by_worker_id_.find(worker_id);
  if (it == by_worker_id_.end() || !workers_[it->second].alive) {
    return Status::NotFound("no live worker '" + worker_id + "'");
  }
  Worker& w = workers_[it->second];
  Heard(now, w);
  if (!w.paused) {
    SetWithdrawn(w, w.draining, /*paused=*/true);
    spdlog::info("worker {} '{}' drained by an admin with {} task(s) in flight", w.worker_id,
                 w.name, w.in_flight());
    NoteConnection(&w.connections, now, "drained", "by an admin");
    RecordWorkerState(w, "draining");
  }
  // Tells the worker, so its log says why no work comes.
  SendToWorker(now, w, proto::Bodyless{Command::kDrain});
  return Status::Ok();
}

Status Scheduler::UndrainWorker(Time now, const std::string& worker_id) {
  auto it = by_worker_id_.find(worker_id);
  if (it == by_worker_id_.end() || !workers_[it->second].in_use) {
    return Status::NotFound("no worker '" + worker_id + "'");
  }
  Worker& w = workers_[it->second];
  if (w.draining) {
    return Status::FailedPrecondition("worker '" + worker_id +
                                      "' is leaving (it drained itself); it cannot be undrained");
  }
  if (!w.paused) return Status::Ok();
  SetWithdrawn(w, w.draining, /*paused=*/false);
  spdlog::info("worker {} '{}' undrained by an admin", w.worker_id, w.name);
  NoteConnection(&w.connections, now, "undrained", "by an admin");
  if (w.alive) {
    RecordWorkerState(w, "online");
    DispatchForWorker(now, it->second);
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------------
// Reputation (reputation.h; docs/architecture.md, "Reputation")

uint32_t Scheduler::EffectiveSlots(const Worker& w) const {
  // Only volunteers (workers with an account) are capped: the operator's own workers are known.
  if (config_.probation_slots == 0 || w.account.empty()) return w.slots;
  if (reputation_.State(w.reputation_key) != WorkerState::kProbation) return w.slots;
  return std::min(w.slots, config_.probation_slots);
}

void Scheduler::NoteReputation(Time now, Worker& w, std::optional<ReputationTransition> change) {
  if (!change || change->from == change->to) return;
  ++reputation_transitions_[static_cast<size_t>(change->to)];
  if (change->to == WorkerState::kQuarantined) {
    // Sticky until an admin acts: kept across restarts.
    output_->RecordTrust({w.reputation_key, w.account, "quarantined", change->reason, now});
  }
  const bool worse = change->to == WorkerState::kQuarantined || change->to == WorkerState::kBanned;
  auto log = worse ? spdlog::level::warn : spdlog::level::info;
  spdlog::log(log, "worker {} '{}' (account '{}'): reputation {} -> {} ({})", w.worker_id, w.name,
              w.account, StateName(change->from), StateName(change->to), change->reason);
  UpdateReady(w);
}

Result<ReputationTransition> Scheduler::SetWorkerTrust(Time now, const std::string& worker_id,
                                                       Trust trust) {
  auto it = by_worker_id_.find(worker_id);
  if (it == by_worker_id_.end()) return Status::NotFound("no worker '" + worker_id + "'");
  const uint32_t index = it->second;
  Worker& w = workers_[index];
  RMA_ASSIGN_OR_RETURN(ReputationTransition change,
                       reputation_.SetTrust(now, w.reputation_key, trust));
  spdlog::warn("worker {} '{}' (account '{}'): an admin set its trust to {}: reputation {} -> {}",
               w.worker_id, w.name, w.account, TrustName(trust), StateName(change.from),
               StateName(change.to));
  if (change.from != change.to) ++reputation_transitions_[static_cast<size_t>(change.to)];
  output_->RecordTrust({w.reputation_key, w.account,
                        trust == Trust::kNormal ? std::string() : std::string(TrustName(trust)),
                        "set by an admin", now});
  if (trust == Trust::kBanned) NoteConnection(&w.connections, now, "banned", "by an admin");
  if (trust == Trust::kBanned && w.alive) {
    output_->ToWorker(w.identity, proto::Disconnect{"an admin banned this worker", false});
    LoseWorker(now, index, "banned by an admin");
  } else {
    UpdateReady(w);
    DispatchForWorker(now, index);
  }
  return change;
}

void Scheduler::RestoreTrust(Time now, const std::vector<TrustRecord>& records) {
  size_t restored = 0;
  for (const TrustRecord& r : records) {
    auto trust = ParseTrust(r.state);
    if (!trust.ok() || *trust == Trust::kNormal) continue;
    if (reputation_.SetTrust(now, r.credential, *trust).ok()) ++restored;
  }
  if (restored > 0) spdlog::info("{} worker credential(s) with a lasting trust state", restored);
}

bool Scheduler::TrustedOnlyService(std::string_view service) const {
  return !trusted_only_services_.empty() && trusted_only_services_.count(service) > 0;
}

bool Scheduler::HasTrustedProvider(uint32_t s) const {
  const Service& svc = services_[s];
  for (const Worker& w : workers_) {
    if (!w.in_use || !w.alive || w.withdrawn() || !reputation_.Trusted(w.reputation_key)) continue;
    if (std::binary_search(w.services.begin(), w.services.end(), s)) return true;
    if (svc.generic_max_tier > 0 && w.tier <= svc.generic_max_tier) return true;
  }
  return false;
}

}  // namespace rma::broker
