// TaskStore: where the broker records tasks and workers. NullStore records nothing (a broker
// without a database keeps tasks only in the scheduler's memory); PgStore (pg_store.h) makes every
// accepted task durable in PostgreSQL.
//
// The broker loop thread is the only caller. Writes are queued without blocking and numbered; an
// implementation with its own thread reports through poll_fd()/OnReadable() how far writes are
// durable, so the loop can release the ACCEPTED answers that wait for them. Everything that needs
// the record (tasks no longer in memory, listings, history, idempotency keys of evicted tasks,
// admin actions on dead tasks that are only on record) is answered asynchronously through the same
// path, after every write queued before the request is durable.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/accounts.h"
#include "broker/store_types.h"
#include "common/status.h"
#include "protocol/messages.h"

namespace rma::broker {

// Who asks to read a task: its owner sees it, an admin sees every task.
struct Caller {
  std::string owner;
  bool admin = false;
  bool detail = false;  // GET with `detail`: the payload and attempt log too
};

// An admin action the record carried out: a dead task that was only on record, retried (its record
// is in StoreReply::restore) or discarded.
struct DeadTaskDone {
  uint64_t ref = 0;
  TaskId id;
  bool retried = false;
};

// Statistics read from the record for an admin "stats" query; the loop merges them into the
// document it builds from memory (or, on error, says the figures are its own).
struct StoredStatsAnswer {
  uint64_t ref = 0;
  Result<StoredStats> stats = Status::Internal("not read");
};

// A console query the record answers (issue 19): "dead_letters" (groups of dead tasks),
// "bulk_retry" / "bulk_discard" (dead tasks on record that match, after the scheduler did those in
// memory: `matched` and `done` are its counts, `limit` what is left) and "history" (the per-minute
// statistics in buckets, `pending` being the minutes not written yet).
struct ConsoleRequest {
  uint64_t ref = 0;
  std::string query;
  std::string service;
  std::string error_code;
  std::vector<TaskId> task_ids;
  // Bulk actions: the tasks the scheduler handled in memory, left alone on record (a retried task
  // may already be dead again there).
  std::vector<TaskId> exclude;
  uint64_t limit = 0;
  uint64_t matched = 0;
  uint64_t done = 0;
  std::string range;  // history: 1h | 24h | 7d
  std::vector<ServiceMinuteStats> pending;
};
// Its answer: the admin document, or why there is none.
struct ConsoleAnswer {
  uint64_t ref = 0;
  Result<nlohmann::json> document = Status::Internal("not read");
  // bulk_discard: the rows deleted, so that copies the scheduler still holds go too.
  std::vector<TaskId> discarded;
};

// What the store hands back to the loop, typed; the loop encodes whatever goes to a client.
struct StoreReply {
  std::string client;
  // An answer for the client: TASK_INFO, TASK_LIST, ACCEPTED (a duplicate key) or ERROR.
  std::optional<proto::ToClientMessage> message;
  std::optional<DeadTaskDone> dead_task;
  std::optional<StoredStatsAnswer> stats;
  // A submission whose idempotency key is not on record: the scheduler takes it as new.
  std::optional<proto::Submit> resubmit;
  // Tasks taken back from the record (an admin retry of a dead task): the scheduler queues them.
  std::vector<TaskRecord> restore;
  // A task whose insert the database refused even on its own: an ACCEPTED for it must not be sent.
  std::optional<TaskId> unrecorded;
  // The answer to an account action (accounts.h).
  std::optional<AccountAnswer> account;
  std::optional<ConsoleAnswer> console;
};

struct RecoveredState {
  std::vector<TaskRecord>
      tasks;  // unfinished tasks, plus finished ones still worth keeping in memory
  // The API keys and worker credentials on record (nullopt: a store without accounts).
  std::optional<AccountsSnapshot> accounts;
  // Recent earnings per account and service (empty: a store without a ledger).
  std::vector<RecentEarnings> earned_recently;
  // Credentials with a lasting trust state (trusted, quarantined, banned).
  std::vector<TrustRecord> trust;
};

class TaskStore {
 public:
  virtual ~TaskStore() = default;
  virtual std::string_view name() const = 0;
  // Whether writes survive a crash (and ACCEPTED must wait for them).
  virtual bool durable() const = 0;
  // Called once before the loop starts serving.
  virtual Result<RecoveredState> Recover() = 0;

  // Queue a write; returns its sequence number (increasing). Worker and statistics writes are
  // numbered too (reads queued after them see them) but nothing waits for them.
  virtual uint64_t Write(TaskWrite write) = 0;
  virtual void WriteWorker(WorkerRecord record) = 0;
  // Per-minute statistics of minutes that have ended.
  virtual void WriteStats(std::vector<ServiceMinuteStats> rows) = 0;
  // Credit ledger rows: committed with the task writes queued in the same loop iteration (a task's
  // completion and what it earned go together or not at all). A store without a database has no
  // ledger (credits need --db).
  virtual void WriteLedger(std::vector<LedgerEntry> entries) { (void)entries; }
  // A credential's lasting trust state (a store without a database forgets them at exit).
  virtual void WriteTrust(TrustRecord record) { (void)record; }
  // Hand the writes queued during this loop iteration to the store (one batch).
  virtual void Flush() = 0;
  // Every write with a sequence number <= this is durable.
  virtual uint64_t durable_seq() const = 0;
  // Whether the store currently accepts writes (false while the database is unreachable).
  virtual bool available() const = 0;

  // Asynchronous reads and actions on the record; only called when can_lookup().
  virtual bool can_lookup() const = 0;
  // A task not in memory, for `caller` (its owner, or an admin): another owner's task is not found.
  virtual void LookupTask(const std::string& client, uint64_t ref, TaskId id,
                          const Caller& caller) = 0;
  virtual void ListTasks(const std::string& client, const proto::List& query) = 0;
  // An asynchronous submission with an idempotency key the scheduler does not hold: answered as a
  // duplicate when a task with that key is on record, otherwise handed back as `resubmit`.
  virtual void SubmitWithKey(const std::string& client, proto::Submit submit) = 0;
  // Admin retry (or discard) of a dead task that is no longer in memory.
  virtual void AdminDeadTask(const std::string& client, uint64_t ref, TaskId id, bool retry) = 0;
  // Admin stats: today's totals and the per-minute history from the record, with `pending` (the
  // minutes not yet written) merged in; answered as StoreReply::stats.
  virtual void Stats(const std::string& client, uint64_t ref,
                     std::vector<ServiceMinuteStats> pending) = 0;

  // An account action (accounts.h), answered as StoreReply::account; only when can_lookup().
  virtual void Account(const std::string& client, AccountRequest request) = 0;
  // A console query on the record, answered as StoreReply::console; only when can_lookup().
  virtual void Console(const std::string& client, ConsoleRequest request) {
    (void)client, (void)request;
  }
  // A descriptor the loop polls; -1 when the store never has anything to report.
  virtual int poll_fd() const = 0;
  // Called when poll_fd() is readable: collects progress (durable_seq, available) and finished
  // reads.
  virtual void OnReadable(std::vector<StoreReply>* replies) = 0;
};

// The store of a broker without a database: it records nothing (the scheduler's memory is all there
// is), numbers writes so the loop's bookkeeping works the same, and never has anything to look up.
class NullStore final : public TaskStore {
 public:
  std::string_view name() const override { return "memory"; }
  bool durable() const override { return false; }
  Result<RecoveredState> Recover() override { return RecoveredState{}; }
  uint64_t Write(TaskWrite) override { return ++seq_; }
  void WriteWorker(WorkerRecord) override {}
  void WriteStats(std::vector<ServiceMinuteStats>) override {}
  void Flush() override {}
  uint64_t durable_seq() const override { return seq_; }
  bool available() const override { return true; }
  bool can_lookup() const override { return false; }
  void LookupTask(const std::string&, uint64_t, TaskId, const Caller&) override {}
  void ListTasks(const std::string&, const proto::List&) override {}
  void SubmitWithKey(const std::string&, proto::Submit) override {}
  void AdminDeadTask(const std::string&, uint64_t, TaskId, bool) override {}
  void Stats(const std::string&, uint64_t, std::vector<ServiceMinuteStats>) override {}
  void Account(const std::string&, AccountRequest) override {}
  int poll_fd() const override { return -1; }
  void OnReadable(std::vector<StoreReply>*) override {}

 private:
  uint64_t seq_ = 0;
};

}  // namespace rma::broker
