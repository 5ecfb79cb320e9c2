// PgStore: the PostgreSQL TaskStore. Accepted tasks, their state changes, workers and per-minute
// statistics go to PostgreSQL; after a restart the unfinished tasks come back from it.
//
// Threads. The broker loop calls the TaskStore methods; they only append to queues and never wait
// on the database. A writer thread owns one connection and commits everything queued since its
// last commit as one transaction (group commit): the rows of all those writes are coalesced per
// task (insert + start + completion of a fast task become one row), COPYed into a temporary table
// and applied with one INSERT ... ON CONFLICT and one UPDATE. After each commit it publishes the
// highest durable sequence number and wakes the loop through an eventfd, which then releases the
// ACCEPTED answers waiting for it. A reader thread owns a second connection for everything that
// reads the record (tasks no longer in memory, listings, stats, idempotency keys, admin actions on
// dead tasks) and for retention; each request waits until the writes queued before it are durable,
// so it sees them, and a slow query never delays a commit. libpqxx and its exceptions stay inside
// broker/pg_*.cc (see pg_internal.h for which file does what).
//
// Failures. A lost connection makes the store unavailable (the scheduler then refuses new durable
// submissions); the writer reconnects with exponential back-off and commits what is pending, in
// order, when the database is back. A batch the database refuses for its data (never expected; text
// is cleaned to valid UTF-8 before it is sent) is retried row by row so one bad row cannot block
// the rest; a task insert that still fails is reported so its ACCEPTED becomes an ERROR.
//
// One broker per database: the writer holds a session advisory lock; a second broker waits for it
// at start and fails after PgStoreOptions::connect_wait.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "broker/store.h"
#include "common/clock.h"
#include "common/status.h"

namespace rma::broker {

struct PgStoreOptions {
  std::string url;               // postgresql://user@host:port/db (or a libpq key=value string)
  Duration retention{0};         // finished tasks are deleted this long after they ended (0: never)
  Duration stats_retention{0};   // per-minute statistics are deleted after this (0: never)
  size_t retention_batch = 500;  // rows per retention DELETE (one short transaction)
  Duration retention_interval = Seconds(60);  // how often retention looks for expired rows
  Duration connect_wait = Seconds(30);  // at Open: how long to wait for the database and the lock
  Duration reconnect_min = Ms(100);     // back-off after a lost connection...
  Duration reconnect_max = Seconds(5);  // ...doubling up to this
  Duration drain_wait = Seconds(10);    // at destruction: how long queued writes may still take
  // A database call (a commit, a read, the idle ping) that has not returned after this long marks
  // the store unavailable until it returns: a hung server (SIGSTOP, a black-holing network) looks
  // exactly like a slow one to libpq, which would wait forever.
  Duration hang_timeout = Seconds(3);
  Duration ping_interval = Seconds(1);  // an idle writer checks the server this often
  // Recover() reads the ledger's earned rows of the last 8 of these, decayed
  // (RecoveredState::earned_recently): the broker's BrokerConfig::contribution_half_life.
  Duration contribution_half_life = Seconds(3600);
  // High availability (--ha, pg_lease.h): the epoch this broker leads with (0: no --ha; then the
  // broker lock keeps a second broker out). Every write transaction is fenced with it; a fenced
  // write makes the store unavailable for good and calls on_fenced (from the writer thread).
  int64_t ha_epoch = 0;
  std::function<void(int64_t epoch)> on_fenced;
  // With --ha: a transaction of this store left open longer is ended by the server, so a paused
  // leader cannot keep the lease row locked against a takeover.
  Duration ha_idle_transaction_timeout = Seconds(2);
};

// Running totals, readable from any thread (logs, tests, the benchmark).
struct PgStoreCounters {
  uint64_t commits = 0;         // write transactions committed
  uint64_t task_rows = 0;       // task rows written (after coalescing)
  uint64_t writes = 0;          // task writes received (before coalescing)
  uint64_t failed_commits = 0;  // write transactions that failed (and were retried)
  uint64_t reconnects = 0;      // writer connections made after the first
  uint64_t dropped_rows = 0;    // rows refused by the database even one by one
  uint64_t retention_deleted = 0;
  uint64_t commit_us = 0;    // time spent in write transactions, commit included
  uint64_t hangs = 0;        // times a database call outlived hang_timeout
  uint64_t ledger_rows = 0;  // credit ledger rows committed
  // Of commit_us, the time the group commits spent writing their ledger rows (not counted for a
  // batch committed row by row).
  uint64_t ledger_us = 0;
  // Of ledger_rows, the spent rows written from their task's stage row (pg_ledger.cc).
  uint64_t ledger_rows_with_task = 0;
};

class PgStore final : public TaskStore {
 public:
  // Connects (waiting up to options.connect_wait for the server and the broker lock; `stop_fd`
  // readable aborts the wait), applies the missing migrations and starts the store's threads.
  // Runs on the caller's thread.
  static Result<std::unique_ptr<PgStore>> Open(PgStoreOptions options, const Clock* clock,
                                               int stop_fd = -1);
  // Commits what is still queued (up to options.drain_wait), then stops the threads.
  ~PgStore() override;
  PgStore(const PgStore&) = delete;
  PgStore& operator=(const PgStore&) = delete;

  std::string_view name() const override { return "postgresql"; }
  bool durable() const override { return true; }
  // Reads the unfinished tasks (queued, running, failed) in priority order, on the caller's thread.
  Result<RecoveredState> Recover() override;

  uint64_t Write(TaskWrite write) override;
  void WriteWorker(WorkerRecord record) override;
  void WriteStats(std::vector<ServiceMinuteStats> rows) override;
  void WriteLedger(std::vector<LedgerEntry> entries) override;
  void WriteTrust(TrustRecord record) override;
  void Flush() override;
  uint64_t durable_seq() const override { return durable_seq_; }
  bool available() const override { return available_; }

  bool can_lookup() const override { return true; }
  void LookupTask(const std::string& client, uint64_t ref, TaskId id,
                  const Caller& caller) override;
  void ListTasks(const std::string& client, const proto::List& query) override;
  void SubmitWithKey(const std::string& client, proto::Submit submit) override;
  void AdminDeadTask(const std::string& client, uint64_t ref, TaskId id, bool retry) override;
  void Stats(const std::string& client, uint64_t ref,
             std::vector<ServiceMinuteStats> pending) override;

  void Account(const std::string& client, AccountRequest request) override;
  void Console(const std::string& client, ConsoleRequest request) override;
  // Creates the first admin account and returns its key when there is no admin account yet
  // (nullopt otherwise). On the caller's thread, before the loop starts.
  Result<std::optional<std::string>> BootstrapAdmin();

  int poll_fd() const override;
  void OnReadable(std::vector<StoreReply>* replies) override;

  PgStoreCounters counters() const;

  // Implementation details, defined in pg_store.cc.
  struct Pending;      // the writes of one loop iteration
  struct ReadRequest;  // one request for the reader thread
  struct Shared;       // what the loop, writer and reader threads share

 private:
  explicit PgStore(std::unique_ptr<Shared> shared);
  void Enqueue(ReadRequest request);

  std::unique_ptr<Shared> shared_;
  // Broker loop thread only.
  uint64_t seq_ = 0;
  std::unique_ptr<Pending> pending_;
  uint64_t durable_seq_ = 0;
  bool available_ = true;
};

}  // namespace rma::broker
