// Scheduler: the broker's brain, a plain state machine with no I/O and no clock of its own.
//
// The broker loop turns each decoded ZeroMQ message into an On*() call with the current time, and
// calls OnTick() when NextWakeup() is due; the scheduler answers through SchedulerOutput (messages
// to workers and clients, records for the store). It owns the worker registry, the per-service
// fair queues (priority, aging, donor class, round-robin across accounts: fair_queue.h) and the
// accounts' recent contributions they are ordered by, the routing index (ordered ready sets per
// service, per tier and per model of a service, so dispatch never scans the pool), the models
// workers list, leases, retries, timeouts, waiters, limits and statistics (gearmand's model: one
// thread owns every table, no locks). Not thread-safe: only the broker loop thread touches it.
// Tests drive it with a FakeClock's times.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <absl/container/node_hash_map.h>
#include <absl/hash/hash.h>

#include "broker/config.h"
#include "broker/console.h"
#include "broker/fair_queue.h"
#include "broker/stats.h"
#include "broker/store_types.h"
#include "broker/timed_heap.h"
#include "common/clock.h"
#include "common/status.h"
#include "protocol/messages.h"

namespace rma::broker {

// Everything the scheduler asks the outside world to do. Messages are typed values: the broker
// loop encodes them at its sockets, so the scheduler needs neither msgpack nor ZeroMQ.
class SchedulerOutput {
 public:
  virtual ~SchedulerOutput() = default;
  virtual void ToWorker(const std::string& identity, const proto::ToWorkerMessage& message) = 0;
  virtual void ToClient(const std::string& identity, const proto::ToClientMessage& message) = 0;
  // An answer that may leave only once every record written before it is durable. Returns a
  // token for ToClientAfter (0 when the answer left at once).
  virtual uint64_t ToClientWhenDurable(const std::string& identity, proto::Accepted accepted) = 0;
  // A message that must not overtake the answer ToClientWhenDurable returned `after` for (a
  // SUBMIT's TASK_INFO of a task that has not ended); at once when `after` is 0.
  virtual void ToClientAfter(const std::string& identity, proto::ToClientMessage message,
                             uint64_t after) = 0;
  // Persistence; called only when the scheduler was built with `durable` = true.
  virtual void Record(TaskWrite write) = 0;
  virtual void RecordWorker(WorkerRecord record) = 0;
  // Credit ledger rows (credits.h), recorded with the task writes of the same loop iteration.
  virtual void RecordLedger(std::vector<LedgerEntry> entries) { (void)entries; }
  // A credential's lasting trust state (reputation), recorded whether or not tasks are durable.
  virtual void RecordTrust(TrustRecord record) { (void)record; }
};

// Generic services that any worker of a high enough tier may take (downward flexibility).
struct GenericService {
  std::string_view name;
  uint32_t max_tier;
};
inline constexpr std::array<GenericService, 3> kGenericServices = {GenericService{"gpu-worker", 1},
                                                                   GenericService{"cpu-worker", 2},
                                                                   GenericService{"processing", 2}};

// Tier from reported hardware: GPU -> 1; >= cpu_min_cores and >= cpu_min_ram_gb -> 2; otherwise, or
// a worker that declares itself storage, -> 3. Declaring "gpu" or "cpu" never raises the tier above
// the hardware.
uint32_t AssignTier(const proto::Capabilities& caps, const TierThresholds& thresholds);

class Scheduler {
 public:
  struct Waiter {
    std::string client;
    uint64_t ref = 0;
    bool sync = false;  // a synchronous call: the answer is the call's result
    uint64_t id = 0;    // unique: its deadline entry and the index find it in O(1)
    // A SUBMIT's wait_ms: an answer that is not the task's end follows the ACCEPTED
    // (SchedulerOutput::ToClientAfter).
    uint64_t after = 0;
    bool watch = false;  // a GET with watch: every change, and the PARTIALs, until the end
  };

  // Why a peer's message was refused; each is counted (rma_broker_refused_total{reason}) and
  // answered with a clear ERROR or DISCONNECT (docs/security.md).
  enum class Refusal : uint8_t {
    kNotLeaseHolder,    // RESULT/PROGRESS for an attempt this session does not hold
    kUnregistered,      // a worker message from a session that never registered
    kWorkerIdInUse,     // READY for a live worker's id, without its secret
    kForeignAttempt,    // READY.running lists an attempt that was never this worker's
    kTooManyServices,   // a manifest over max_services_per_worker, or the service table full
    kQueueFull,         // max_unfinished_tasks / _bytes or max_queued_per_service reached
    kTooManyWaiters,    // max_waiters_per_task / _per_client reached
    kStreamOutOfOrder,  // a PARTIAL whose seq is not the next of its attempt's stream
    kBanned,            // READY from a credential an admin banned
    kCount,
  };
  static std::string_view RefusalName(Refusal r);

  // Verification by replication (docs/architecture.md, "Verification"): a sampled task's accepted
  // results so far, and the workers whose credentials or accounts may not run its next replica.
  struct Replica {
    uint32_t attempt = 0;
    std::string worker_id;
    std::string reputation_key;
    std::string account;
    uint32_t tier = 3;
    Duration ran{0};
    Bytes result;
    std::string content_type;
    uint32_t http_status = 0;
  };
  struct Verification {
    std::vector<Replica> results;  // in arrival order; at most kMaxReplicas
    struct Excluded {
      std::string reputation_key;
      std::string account;  // "": none (then only the credential is excluded)
    };
    std::vector<Excluded> excluded;  // every worker that returned a result or failed a replica
    uint32_t failed_replicas = 0;
    size_t held_bytes = 0;  // of `results`, counted in the unfinished bytes budget
  };
  // A disagreement brings a third result; three different results end the task.
  static constexpr size_t kMaxReplicas = 3;
  // Replica attempts that may fail (error, timeout) before the first result is returned unverified.
  static constexpr uint32_t kMaxFailedReplicas = 2;
  enum class VerifyOutcome : uint8_t {
    kSampled,     // a result was picked for verification
    kAgreed,      // the replica agreed with the first result
    kTieBroken,   // they disagreed and a third result sided with one of them
    kNoMajority,  // three different results (or two and no third worker in time): task dead
    kUnverified,  // no worker of another account ran a replica in time: returned unverified
    kCount,
  };
  static std::string_view VerifyOutcomeName(VerifyOutcome outcome);

  // A task: its durable record (what the store keeps and a restart restores) plus the state only
  // the live scheduler needs. The record's payload and result are shared with every message and
  // store write that carries them.
  struct Task : TaskRecord {
    uint32_t service_index = 0;  // into services(); `service` holds the name
    // Worker losses that count toward max_requeues: only sessions that lived a liveness window
    // (a peer opening short sessions cannot dead-letter other people's tasks).
    uint32_t losses = 0;
    bool transient = false;  // synchronous call: never persisted
    double progress = -1;    // the running attempt's last PROGRESS (-1: none)
    std::string progress_message;
    uint32_t running_attempt = 0;  // attempt number of the current lease
    uint32_t stream_seq = 0;       // the seq the current attempt's next PARTIAL must carry
    // A synchronous call's worker whose attempt failed last: the next attempt prefers another
    // ready worker (a provider that fails before the first byte is replaced, not asked again).
    int32_t avoid_worker = -1;
    uint32_t epoch = 0;  // bumped when the task leaves a queue or heap slot: stale entries skip
    // Its slot in its service's FairQueue while it waits there (not while delayed).
    uint32_t queue_slot = FairQueue::kNoSlot;
    int32_t worker = -1;  // registry slot while running
    Time queued_at{};
    // A synchronous call's HTTP request; out of line, since most tasks have none and the task
    // table's cache footprint is what dispatch pays for.
    std::unique_ptr<const proto::HttpRequest> request;
    // A sampled task's verification (its results so far); out of line for the same reason.
    std::unique_ptr<Verification> verification;
    std::vector<Waiter> waiters;
  };

  // Order of a worker in a ready set: higher tier (lower number) first, then least loaded, then
  // least recently given work (round-robin among equals).
  struct ReadyKey {
    uint32_t tier = 3;
    uint32_t band = 1;         // reputation: 0 trusted, 1 good, 2 probation, 3 suspect
    uint32_t utilisation = 0;  // in-flight / slots, per mille
    uint32_t load = 0;         // reported load, per mille (capped)
    uint64_t lru = 0;
    uint32_t worker = 0;
    auto operator<=>(const ReadyKey&) const = default;
  };

  // Routing by model: one model (ServiceInfo::models) under one service name, with the workers
  // that list it. An entry lives while a registered worker (live, or offline within
  // offline_retention) lists the model under that service.
  struct ModelService {
    uint32_t listed = 0;            // registered workers whose service lists the model
    uint32_t providers = 0;         // ...of which live
    uint32_t active_providers = 0;  // ...of which not draining or paused
    std::set<ReadyKey> ready;       // live providers with a free slot (a subset of the service's)
  };
  struct Model {
    Time first_seen{};    // when a worker first listed it (admin query "models": created)
    uint32_t listed = 0;  // listings by registered workers, all services together
    std::map<std::string, ModelService, std::less<>> services;  // by service name
  };

  struct Worker {
    bool in_use = false;
    bool alive = false;
    bool draining = false;  // the worker is leaving (it sent DRAIN): no new work, for good
    bool paused = false;    // an admin drained it: no new work until an admin undrains it
    // Whether it takes no new work (counted out of providers and ready sets).
    bool withdrawn() const { return draining || paused; }
    std::string identity;  // ZeroMQ routing id of the current session
    std::string worker_id;
    // The worker's secret (READY.worker_secret): a new session may take over this worker's id only
    // with it. Empty for workers that send none (they cannot be taken over while alive).
    std::string secret;
    std::string name;
    std::string agent_version;
    std::string curve_key;  // CURVE public key (Z85) when the link has one
    std::string account;    // the contributor account its credential binds it to ("": none)
    // What its reputation is kept under: its CURVE key, or "id:" + worker id without one.
    std::string reputation_key;
    std::vector<std::string> allowed_services;  // its credential's allow-list (empty: any)
    bool reads_packed = false;  // READY.packed: messages to it may pack bodies (frames.h)
    proto::Capabilities caps;
    bool simulated = false;
    uint32_t tier = 3;
    std::vector<proto::ServiceInfo> manifest;
    std::vector<uint32_t> services;  // service indexes it provides, sorted
    // The model entries it is a live provider in (ready keys go there too); empty while offline.
    // Entries are nodes of models_ and never move while the worker lists them.
    std::vector<ModelService*> model_sets;
    uint32_t slots = 1;
    std::vector<proto::RunningTask>
        running;  // attempts it holds, including ones the broker does not know
    proto::Heartbeat report;
    Time first_seen{};
    Time registered_at{};
    Time last_heard{};
    Time last_sent{};
    Time offline_since{};
    uint64_t tasks_done = 0;
    uint64_t tasks_failed = 0;
    Duration busy{0};
    // Uptime credit: online and healthy time not paid yet, and when the sweep last looked.
    Duration unpaid_uptime{0};
    Time uptime_seen{};
    uint64_t lru = 0;
    // Its last connection events (console worker page), newest last, bounded (console.h).
    std::deque<ConnectionEvent> connections;
    bool in_ready = false;
    // Quarantined with a free slot: in its services' quarantined_ready sets (replicas only).
    bool in_quarantined_ready = false;
    ReadyKey key;
    uint32_t in_flight() const { return static_cast<uint32_t>(running.size()); }
  };

  struct Service {
    bool in_use = true;  // false: forgotten, the slot waits for another name
    std::string name;
    uint32_t generic_max_tier = 0;  // 0: not a generic service
    FairQueue queue;                // the tasks waiting to start, in the order they should
    size_t delayed = 0;             // waiting for run_at or a retry back-off
    std::set<ReadyKey> ready;       // explicit providers with a free slot
    // Quarantined explicit providers with a free slot: they get verification replicas only, when
    // no other eligible worker is free (docs/architecture.md, "Verification").
    std::set<ReadyKey> quarantined_ready;
    uint32_t providers = 0;         // live workers listing it (draining included)
    uint32_t active_providers = 0;  // ...of which not draining or paused
    uint32_t in_flight = 0;
    ServiceLimit limit;
    std::optional<VerifySpec> verify;  // the catalog's "verify" (sampled results run twice)
    double tokens = 0;
    Time tokens_at{};
    bool throttle_wakeup_pending = false;
    Counters counters;
    LatencyHistogram queue_wait;
    LatencyHistogram run_time;
    RateWindow starts;             // attempts started: the rate estimated_start_s divides by
    uint32_t tasks_in_memory = 0;  // tasks of this service in memory, finished ones included
    size_t queued() const { return queue.size(); }
  };

  // `task_ids` returns the ids of new tasks: unpredictable 64-bit values in production
  // (SecureRandom, so nobody can guess another client's task id); tests leave it empty for a
  // sequence from `seed`.
  Scheduler(BrokerConfig config, SchedulerOutput* output, bool durable, uint64_t seed,
            std::function<uint64_t()> task_ids = {});
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // ---- Worker endpoint events (identity = ZeroMQ routing id of the sender) ----
  void OnWorkerReady(Time now, const std::string& identity, proto::Ready ready);
  void OnWorkerHeartbeat(Time now, const std::string& identity, const proto::Heartbeat* report);
  void OnWorkerResult(Time now, const std::string& identity, proto::TaskResult result);
  void OnWorkerProgress(Time now, const std::string& identity, const proto::Progress& progress);
  // A chunk of a running attempt's output: relayed at once to the task's synchronous callers
  // (nothing is buffered here; docs/protocol.md §5.15). Chunks of an attempt this session does not
  // hold, or out of order, are dropped and counted, without an answer per chunk.
  void OnWorkerPartial(Time now, const std::string& identity, proto::Partial partial);
  void OnWorkerManifest(Time now, const std::string& identity, proto::Manifest manifest);
  void OnWorkerDrain(Time now, const std::string& identity);
  void OnWorkerDisconnect(Time now, const std::string& identity, const proto::Disconnect& bye);
  // A message from this worker could not be decoded: tell it why (it stays registered).
  void OnWorkerMalformed(Time now, const std::string& identity, const Status& why);
  // A send to the worker failed because its connection is gone.
  void OnWorkerUnreachable(Time now, const std::string& identity);
  // The worker key list changed (SIGHUP): every live worker whose CURVE key is no longer admitted
  // is told DISCONNECT (reconnect: false) and lost at once, its attempts queued again. Returns how
  // many.
  size_t RevokeWorkerKeys(Time now, const std::function<bool(const std::string&)>& admitted);
  // An admin capped the tier of the credential `key` (0: no cap): a live worker with that key takes
  // its new tier now, as it would at its next READY. Returns how many live workers changed tier.
  size_t CapWorkerTier(Time now, const std::string& key, uint32_t tier_cap);
  // The CURVE key of the live worker `worker_id` ("" when there is none or it has no key), and
  // the keys of every live worker (admin documents).
  std::string LiveWorkerKey(const std::string& worker_id) const;
  // Whether the worker on this session reads packed body frames.
  bool WorkerReadsPacked(const std::string& identity) const;
  // Drops from `services` what the worker's credential does not allow (READY and MANIFEST).
  static void KeepAllowedServices(const Worker& w, std::vector<proto::ServiceInfo>* services);
  // A manifest as the registry keeps it: a service named twice counts once (the first), and each
  // service's models sorted without duplicates.
  static void NormaliseManifest(std::vector<proto::ServiceInfo>* services);
  std::set<std::string> LiveWorkerKeys() const;

  // ---- Client endpoint events ----
  void OnSubmit(Time now, const std::string& client, proto::Submit submit);
  // Returns false when the task is not in memory (the caller may ask the store).
  bool OnGet(Time now, const std::string& client, const proto::Get& get);
  bool OnCancel(Time now, const std::string& client, const proto::CancelTask& cancel);
  void OnList(Time now, const std::string& client, const proto::List& list);
  void OnClientHeartbeat(Time now, const std::string& client);
  void OnClientMalformed(Time now, const std::string& client, uint64_t ref, const Status& why);

  // ---- Admin actions (the admin queries read state through the accessors below) ----
  Status RetryDead(Time now, TaskId id);
  Status DiscardDead(Time now, TaskId id);
  // An admin drain pauses a worker: it finishes what it runs and gets nothing new, stays connected,
  // and takes work again after UndrainWorker (also across its reconnects).
  Status DrainWorker(Time now, const std::string& worker_id);
  Status UndrainWorker(Time now, const std::string& worker_id);
  // Every queued task of a service (waiting to start, for run_at or a retry back-off; not the
  // running ones) ends cancelled with error_code "purged". NotFound for a service never seen.
  Result<size_t> PurgeService(Time now, const std::string& service);
  // Dead tasks in memory that match (service, error code and ids: empty = any) go back to their
  // queues (retry) or are deleted (discard), at most `limit` of them.
  struct BulkOutcome {
    uint64_t matched = 0;
    uint64_t done = 0;
    std::vector<TaskId> handled;  // the ids it matched
  };
  BulkOutcome BulkDead(Time now, bool retry, const std::string& service,
                       const std::string& error_code, const std::vector<TaskId>& ids,
                       uint64_t limit);
  // Calls f(task) for each task in memory (admin documents; f must not change the scheduler).
  template <typename F>
  void ForEachTask(F&& f) const {
    for (const auto& [id, t] : tasks_) f(t);
  }

  // ---- Time ----
  void OnTick(Time now);
  Time NextWakeup() const;

  // ---- Persistence ----
  // The loop reports whether the store accepts writes; while it does not, durable submissions are
  // refused.
  void SetStoreAvailable(bool available) { store_available_ = available; }
  bool store_available() const { return store_available_; }
  // After a restart: unfinished tasks go back to their queues in priority order (oldest first),
  // finished ones are kept for GET and idempotency.
  void Restore(Time now, std::vector<TaskRecord> records);

  // ---- Read access for admin queries and tests ----
  const BrokerConfig& config() const { return config_; }
  // The balances credits are checked against (the broker loop tells it about accounts and grants).
  CreditBook& credits() { return credits_; }
  const ReputationBook& reputation() const { return reputation_; }
  // Reputation state changes so far, by the state entered (metrics).
  const std::array<uint64_t, kWorkerStates>& reputation_transitions() const {
    return reputation_transitions_;
  }
  uint64_t verifications(VerifyOutcome outcome) const {
    return verifications_[static_cast<size_t>(outcome)];
  }
  // An admin's word on a worker's credential (POST /api/admin/workers/{id}/trust): NotFound for a
  // worker not registered. A banned worker is disconnected at once and refused at every READY.
  Result<ReputationTransition> SetWorkerTrust(Time now, const std::string& worker_id, Trust trust);
  // At start: the lasting trust states the store kept (admins' words, quarantines).
  void RestoreTrust(Time now, const std::vector<TrustRecord>& records);
  const std::vector<Worker>& workers() const { return workers_; }
  // Forgotten slots have in_use false.
  const std::vector<Service>& services() const { return services_; }
  const Task* FindTask(TaskId id) const {
    auto it = tasks_.find(id);
    return it == tasks_.end() ? nullptr : &it->second;
  }
  // Whether a task in memory holds this owner's idempotency key (PostgreSQL mode asks the record
  // about keys the scheduler does not hold, before OnSubmit).
  bool KnowsIdempotencyKey(const std::string& owner, const std::string& key) const {
    auto it = idempotency_.find(IdempotencySlot(owner, key));
    return it != idempotency_.end() && FindTask(it->second) != nullptr;
  }
  uint64_t refusals(Refusal r) const { return refusals_[static_cast<size_t>(r)]; }
  // What the budgets hold now.
  size_t unfinished_tasks() const { return unfinished_tasks_; }
  size_t unfinished_bytes() const { return unfinished_bytes_; }
  size_t finished_result_bytes() const { return finished_result_bytes_; }
  size_t waiters() const { return pending_waits_.size(); }
  size_t services_in_use() const { return services_in_use_; }
  const Counters& counters() const { return counters_; }
  const History& history() const { return history_; }
  const RateWindow& completions() const { return completion_rate_; }
  const RateWindow& submissions() const { return submission_rate_; }
  const LatencyHistogram& queue_wait() const { return queue_wait_; }
  const LatencyHistogram& run_time() const { return run_time_; }
  size_t task_count() const { return tasks_.size(); }
  // Entries in the timer heaps, live or stale (tests check they stay bounded).
  size_t timer_entries() const {
    return delayed_.size() + expiry_.size() + timeouts_.size() + waits_.size() + throttled_.size();
  }
  size_t total_queued() const;
  size_t total_in_flight() const;
  // Submissions and completions since the start of the current UTC day (resets at midnight UTC).
  const Counters& today() const { return today_; }
  Time today_start() const { return today_start_; }
  // Names of services a submission could be routed to right now, sorted.
  std::vector<std::string> AvailableServices() const;
  // Whether any live worker could take service index s (ignoring free slots).
  bool HasProvider(uint32_t s) const;
  // The same for a task: with a model, a live worker listing it under the task's service.
  bool HasProvider(const Task& t) const;
  // Every model a registered worker lists, by name.
  const std::unordered_map<std::string, Model>& models() const { return models_; }
  // nullptr when no registered worker lists the model (under that service).
  const Model* FindModel(const std::string& name) const {
    auto it = models_.find(name);
    return it == models_.end() ? nullptr : &it->second;
  }
  const ModelService* FindModelService(const std::string& model, std::string_view service) const;
  // Oldest wait among queued tasks of service s (0 when empty).
  Duration OldestWait(Time now, uint32_t s) const;
  // An account's contribution (docs/architecture.md, "Queueing order"): what its workers' accepted
  // results took, in compute seconds x tier weight, halved every contribution_half_life; and the
  // donor class its queued tasks are ordered by (DonorClassOf, as of the last result or sweep).
  double Contribution(Time now, const std::string& account) const;
  // At start: the contributions the record remembers (the ledger's recent earned rows, decayed),
  // each service's earnings divided by its credit multiplier back into weighted compute seconds.
  void SeedContributions(Time now, const std::vector<RecentEarnings>& earned);
  uint32_t DonorClass(const std::string& account) const;
  // Recommendations for a worker of this tier and hardware, from the catalog and current demand.
  std::vector<proto::Recommendation> Recommend(Time now, uint32_t tier,
                                               const proto::Capabilities& caps,
                                               const std::vector<uint32_t>& provided) const;
  // Health of a worker for the dashboard: "healthy", "late" or "offline".
  std::string_view Health(Time now, const Worker& w) const;
  proto::TaskView View(Time now, const Task& t, bool with_result) const;
  // What the store keeps about a worker, in the given status ("online", "draining", "offline").
  static WorkerRecord RecordOf(const Worker& w, std::string_view status);

 private:
  struct TimedEntry {
    Time at;
    TaskId id;
    uint32_t tag = 0;  // epoch or attempt, depending on the heap
  };
  struct WaitEntry {
    Time at;
    uint64_t waiter = 0;  // Waiter::id
  };
  // Where a pending waiter is: its task, and its index in the task's waiters.
  struct WaiterSlot {
    TaskId task;
    uint32_t index = 0;
  };
  struct ThrottleEntry {
    Time at;
    uint32_t service = 0;
  };
  bool EpochLive(const TimedEntry& e) const {
    const Task* t = FindTask(e.id);
    return t != nullptr && t->epoch == e.tag;
  }

  // Registry.
  int32_t WorkerByIdentity(const std::string& identity) const;
  // WorkerByIdentity, telling an unknown session to register again (DISCONNECT reconnect=true).
  int32_t RegisteredWorker(const std::string& identity);
  void Heard(Time now, Worker& w);
  void SendToWorker(Time now, Worker& w, const proto::ToWorkerMessage& message);
  void UpdateReady(Worker& w);
  void RemoveFromReady(Worker& w);
  void AttachServices(Worker& w);
  void DetachServices(Worker& w);
  // Counts the models of w's manifest in models_ (+1) or takes them out (-1); entries nobody lists
  // any more are forgotten. A live worker is detached before its listing goes.
  void ListModels(Time now, const Worker& w, int delta);
  // Replaces a worker's manifest (detached), keeping the model listing right.
  void SetManifest(Time now, Worker& w, std::vector<proto::ServiceInfo> manifest);
  // Changes whether a live worker takes new work, keeping the provider counts right.
  void SetWithdrawn(Worker& w, bool draining, bool paused);
  void LoseWorker(Time now, uint32_t index, std::string_view reason);
  void ForgetWorker(uint32_t index);
  void ReconcileRunning(Time now, uint32_t index, const std::vector<proto::RunningTask>& running);
  void RecordWorkerState(const Worker& w, std::string_view status);
  void Sweep(Time now);
  // Uptime credit: adds the time since the last sweep while `w` is online and healthy (it offers a
  // service and takes work) and pays every whole uptime period.
  void AccrueUptime(Time now, Worker& w);
  // Reputation: logs and counts a state change of `w`'s credential and re-places it in routing.
  void NoteReputation(Time now, Worker& w, std::optional<ReputationTransition> change);
  // Trusted-only work: whether the catalog says so for `service`, and whether a live worker an
  // admin marked trusted provides service `s` (a scan of the workers: asked for synchronous
  // trusted-only calls only).
  bool TrustedOnlyService(std::string_view service) const;
  bool HasTrustedProvider(uint32_t s) const;
  // The tasks `w` may run at once: its slots, capped while it is on probation.
  uint32_t EffectiveSlots(const Worker& w) const;

  // Services and queues.
  // The index of `name`, created on first use; nullopt when the table is full (max_services) and no
  // idle service can be forgotten to make room.
  std::optional<uint32_t> ServiceIndex(const std::string& name);
  bool ForgetOneIdleService();
  std::optional<uint32_t> FindService(std::string_view name) const;
  void Enqueue(Time now, Task& t, bool front);
  // The task leaves its queue, or its delay (cancel/expire/attach): timer entries go stale.
  void Unqueue(Time now, Task& t);
  void DispatchService(Time now, uint32_t s);
  void DispatchForWorker(Time now, uint32_t index);
  bool ThrottleAllows(Time now, Service& svc);
  int32_t PickWorker(const Service& svc, const Task& t) const;
  // Leases t to a worker; `send` = false when the worker already runs it (reattached after a
  // reconnect).
  void Start(Time now, Task& t, uint32_t worker_index, uint32_t attempt, bool send);

  // Life cycle.
  void Complete(Time now, Task& t, proto::TaskResult&& r);
  // What an accepted result earns its worker's account and costs its submitter (credits.h), and
  // what it adds to the account's contribution (donor priority); `charge_owner` false for a
  // verified task's second agreeing result (the submitter pays for one run).
  void Credit(Time now, const Task& t, const std::string& account, const std::string& worker_id,
              uint32_t tier, uint32_t attempt, Duration ran, bool charge_owner = true);

  // Verification (scheduler_verify.cc; docs/architecture.md, "Verification").
  // Whether w's accepted result for t must be verified: t is being verified already, or its
  // service has "verify", the draw at ReputationBook::SampleRate says so and a worker of another
  // account could run the replica. A synchronous call that streamed chunks is never sampled.
  bool NeedsVerification(const Task& t, const Worker& w);
  // An accepted result of a sampled task: kept, compared with the others; the task completes when
  // two agree, or waits for another replica.
  void AddReplicaResult(Time now, Task& t, const Worker& w, proto::TaskResult&& result,
                        Duration ran);
  // Results a and b agree: the task completes with a's, verified; the agreeing workers earn and
  // gain an agreement, the others a disagreement.
  void SettleVerification(Time now, Task& t, size_t a, size_t b);
  // No replica could settle it (none ran in time, or too many failed): one result is returned
  // unverified; results that disagree end the task dead (verification_failed).
  void EndVerification(Time now, Task& t, std::string_view why);
  // Takes t's verification out (its held bytes leave the budget) and returns it.
  Verification TakeVerification(Task& t);
  // A replica attempt failed (error or timeout): another is queued, or EndVerification.
  void ReplicaFailed(Time now, Task& t);
  // Whether `w` may run a replica of a task verified under `v`.
  static bool ExcludedFromReplica(const Verification& v, const Worker& w);
  // Whether a live, routable worker other than those `v` excludes provides t's service (a scan of
  // the registry, made only when a result is sampled).
  bool HasReplicaProvider(const Task& t, const Verification& v) const;
  // Logs and counts a reputation change of a replica's credential, whose worker may be gone.
  void NoteReplicaReputation(Time now, const Replica& r,
                             std::optional<ReputationTransition> change);
  // An attempt ended without a result (its worker was lost or gave it up): back to the front of its
  // queue, or dead after too many losses.
  // Only a worker whose session lived a liveness window (Settled) counts toward dead-lettering.
  void Requeue(Time now, Task& t, bool settled, std::string_view why);
  // A synchronous call whose current attempt relayed chunks to its caller: it is never tried
  // again (docs/protocol.md §6.7).
  static bool StreamStarted(const Task& t) { return t.transient && t.stream_seq > 0; }
  bool Settled(Time now, const Worker& w) const;
  void FailAttempt(Time now, Task& t, std::string error, std::string code, bool retryable);
  void Finish(Time now, Task& t, proto::TaskStatus status);  // any terminal state
  void CancelRunning(Time now, Task& t, std::string_view reason);
  void NotifyWaiters(Time now, Task& t);
  // The task changed (status, progress) without ending: its watchers hear it.
  void NotifyWatchers(Time now, const Task& t);
  // Adds a waiter (false, nothing added: a waiter budget is spent) and takes one off.
  bool AddWaiter(Time now, Task& t, const std::string& client, uint64_t ref, bool sync,
                 Duration wait, uint64_t after = 0, bool watch = false);
  void RemoveWaiter(Task& t, uint32_t index);
  void Refuse(Refusal r) { ++refusals_[static_cast<size_t>(r)]; }
  // A RESULT or PROGRESS from a session that is not registered: ERROR, then DISCONNECT (register
  // again); counted.
  void RefuseUnregistered(const std::string& identity, std::string_view command, TaskId task,
                          uint32_t attempt);
  // ERROR permission_denied to a registered worker for an attempt it does not hold; counted.
  void RefuseNotLeaseHolder(Time now, Worker& w, TaskId task, uint32_t attempt);
  // The running task whose attempt `attempt` the session `identity` holds, after renewing its
  // leases; nullptr when it holds none. `*index` is the session's worker, or -1 when it is not
  // registered (then it was told to register again, as for `command` from a stranger).
  Task* HeldAttempt(Time now, const std::string& identity, std::string_view command, TaskId task,
                    uint32_t attempt, int32_t* index);
  // Whether `owner` (admin: anybody) may see or change task t.
  static bool MaySee(const Task& t, const std::string& owner, bool admin) {
    return admin || t.owner == owner;
  }
  static std::string IdempotencySlot(const std::string& owner, const std::string& key) {
    return owner + '\x1f' + key;  // owners cannot contain control characters
  }
  // A random nonzero id; the caller inserts it and draws again in the (2^-64) case it is taken.
  TaskId DrawTaskId();
  // SUBMIT with a model (docs/protocol.md §6.1): fills in the service when the submission names
  // none, and says whether a live worker serves the model there. NotFound when no registered worker
  // lists the model (or not under the named service) and the task cannot wait for one;
  // Unavailable for a synchronous call that no live worker can take.
  Status RouteByModel(proto::Submit* submit, bool sync, bool* provided) const;
  // Budget accounting of a task entering or leaving the unfinished set.
  void CountUnfinished(const Task& t, int delta);
  void ReplyTask(Time now, const std::string& client, uint64_t ref, const Task& t,
                 uint64_t after = 0);
  // A SUBMIT's wait_ms (docs/protocol.md §6.1): TASK_INFO when the task ends (at once if it has),
  // or after the ACCEPTED (token `after`) when the wait passes first.
  void WaitAfterAccepted(Time now, Task& t, const std::string& client, uint64_t ref,
                         uint32_t wait_ms, uint64_t after);
  void ReplyError(const std::string& client, uint64_t ref, const Status& status,
                  std::vector<std::string> available = {}, std::string suggestion = {});
  // An ERROR with a code of the protocol's own (queue_full) rather than a status code's name.
  void ReplyError(const std::string& client, uint64_t ref, std::string code, std::string message);
  void ReplyNotFound(const std::string& client, uint64_t ref, TaskId id);
  void Persist(const Task& t, WriteKind kind);
  void MaybeEvict(Time now);
  // Drops a task from memory (evicted or discarded), with its index entries and budgets.
  void Forget(Task& t);
  Duration Backoff(uint32_t failures);
  // Donor priority: an accepted result adds to its worker's account's contribution; the sweep lets
  // contributions decay. A changed class reorders the account's queued tasks in every service.
  void Contribute(Time now, const std::string& account, double weighted_seconds);
  void DecayContributions(Time now);
  void SetDonorClass(const std::string& account, uint32_t donor_class);
  // Inline: the hottest lookup, called from every scheduler_*.cc.
  Task* Find(TaskId id) {
    auto it = tasks_.find(id);
    return it == tasks_.end() ? nullptr : &it->second;
  }
  void RollDay(Time now);

  BrokerConfig config_;
  SchedulerOutput* output_;
  bool durable_;
  bool store_available_ = true;
  CreditBook credits_;
  ReputationBook reputation_;
  // The catalog's trusted-only services, looked up at every SUBMIT (not a scan of the catalog).
  std::set<std::string, std::less<>> trusted_only_services_;
  std::array<uint64_t, kWorkerStates> reputation_transitions_{};
  std::array<uint64_t, static_cast<size_t>(VerifyOutcome::kCount)> verifications_{};
  std::mt19937_64 rng_;

  std::vector<Worker> workers_;
  std::vector<uint32_t> free_worker_slots_;
  std::unordered_map<std::string, uint32_t> by_identity_;
  std::unordered_map<std::string, uint32_t> by_worker_id_;
  std::array<std::set<ReadyKey>, 4> tier_ready_;  // [1..3]: every ready worker of that tier
  std::array<uint32_t, 4> tier_live_{};           // live workers taking new work, per tier
  uint64_t lru_counter_ = 0;

  std::vector<Service> services_;
  std::unordered_map<std::string, uint32_t> service_index_;
  // Node-based: Worker::model_sets point into the entries.
  std::unordered_map<std::string, Model> models_;
  // Accounts whose workers contributed recently (forgotten once it has decayed to nothing).
  struct Donor {
    double contribution = 0;  // weighted compute seconds as of `at`
    Time at{};
    uint32_t donor_class = 0;
  };
  std::unordered_map<std::string, Donor> donors_;

  // Task ids are random (unguessable): std::unordered_map's bucket array and the node chains it
  // walks are then a cache miss per lookup and cost a fifth of the broker's throughput. A Swiss
  // table probes a compact array of control bytes instead; nodes keep Task* stable.
  struct TaskIdHash {
    size_t operator()(TaskId id) const { return absl::Hash<uint64_t>{}(id.value()); }
  };
  absl::node_hash_map<TaskId, Task, TaskIdHash> tasks_;
  std::unordered_map<std::string, TaskId> idempotency_;  // IdempotencySlot(owner, key) -> task
  std::deque<std::pair<TaskId, Time>> finished_;         // eviction order
  std::function<uint64_t()> task_ids_;
  std::vector<uint32_t> free_service_slots_;
  size_t services_in_use_ = 0;

  // Budgets.
  size_t unfinished_tasks_ = 0;
  size_t unfinished_bytes_ = 0;
  size_t finished_result_bytes_ = 0;
  uint64_t next_waiter_id_ = 0;
  std::unordered_map<uint64_t, WaiterSlot> pending_waits_;
  std::unordered_map<std::string, uint32_t> waiters_per_client_;
  std::array<uint64_t, static_cast<size_t>(Refusal::kCount)> refusals_{};

  TimedHeap<TimedEntry> delayed_;   // run_at and retry back-off; tag = epoch
  TimedHeap<TimedEntry> expiry_;    // max queue time; tag = epoch
  TimedHeap<TimedEntry> timeouts_;  // running attempts; tag = attempt
  TimedHeap<WaitEntry> waits_;
  TimedHeap<ThrottleEntry> throttled_;
  Time next_sweep_{};

  Counters counters_;
  Counters today_;
  Time today_start_{};
  LatencyHistogram queue_wait_;
  LatencyHistogram run_time_;
  RateWindow completion_rate_;
  RateWindow submission_rate_;
  History history_;
};

}  // namespace rma::broker
