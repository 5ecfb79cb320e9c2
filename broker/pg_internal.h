// Internal to the PostgreSQL store (broker/pg_*.cc, nothing else includes it): the state the
// store's three threads share, the writer and reader thread bodies, and the SQL, row mapping and
// session set-up they use. libpqxx appears in these files only.
//
//   pg_store.cc   PgStore: the broker loop's side (queues, notifications), Open and Recover
//   pg_writer.cc  the writer thread: coalesced group commits, reconnects
//   pg_reader.cc  the reader thread: lookups, listings, keys, stats, dead tasks, retention
//   pg_sql.cc     statements, row <-> TaskRecord, sessions, migrations
//   pg_accounts.cc accounts, API keys, enrolment tokens, worker credentials (on the reader thread)
//   pg_ledger.cc  the credit ledger: the writer's rows, the reader's account and leaderboard
//   queries
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "broker/console.h"
#include "broker/pg_store.h"
#include "common/mutex.h"

namespace rma::broker {

namespace pg {
// An eventfd used as a wake-up flag between threads.
void Signal(int fd);
void Drain(int fd);
}  // namespace pg

struct PgStore::Pending {
  std::vector<std::pair<uint64_t, TaskWrite>> tasks;  // (sequence number, write)
  std::vector<WorkerRecord> workers;
  std::vector<ServiceMinuteStats> stats;
  std::vector<LedgerEntry> ledger;
  std::vector<TrustRecord> trust;
  uint64_t max_seq = 0;
  bool empty() const {
    return tasks.empty() && workers.empty() && stats.empty() && ledger.empty() && trust.empty();
  }
};

struct PgStore::ReadRequest {
  enum class Kind { kGet, kList, kKey, kDeadTask, kStats, kAccount, kConsole };
  Kind kind = Kind::kGet;
  uint64_t after_seq = 0;  // served once every write up to this one is durable
  std::string client;
  uint64_t ref = 0;
  TaskId id;
  Caller caller;  // kGet: whose task it may be
  bool retry = false;
  proto::List list;
  proto::Submit submit;
  std::vector<ServiceMinuteStats> pending;
  AccountRequest account;
  ConsoleRequest console;
  Time now{};
};

struct PgStore::Shared {
  PgStoreOptions options;
  const Clock* clock = nullptr;
  std::string writer_role;  // writer-<instance id>, unique to this process
  int writer_wake = -1;     // eventfd: the loop flushed writes, or stop
  int loop_wake = -1;       // eventfd: durable_seq or availability changed, or replies are waiting

  Mutex mu;
  CondVar reader_cv;  // reads queued, durable_seq or availability changed, stop
  std::vector<Pending> inbox RMA_GUARDED_BY(mu);
  std::deque<ReadRequest> reads RMA_GUARDED_BY(mu);
  std::vector<StoreReply> outbox RMA_GUARDED_BY(mu);
  // Published together with the replies so the loop never releases an ACCEPTED before it has seen
  // that its task was not recorded.
  uint64_t durable_seq RMA_GUARDED_BY(mu) = 0;
  bool available RMA_GUARDED_BY(mu) = true;  // the writer has a connection
  bool hung RMA_GUARDED_BY(mu) = false;      // a database call outlived options.hang_timeout
  bool stopping RMA_GUARDED_BY(mu) = false;
  // The store can be used: connected and not hung.
  bool usable() const RMA_REQUIRES(mu) { return available && !hung; }

  // When the writer's and the reader's current database call began (steady clock, nanoseconds;
  // 0: not in a call). Read by the watchdog thread.
  std::atomic<int64_t> writer_call_since{0}, reader_call_since{0};
  CondVar watchdog_cv;  // stop

  std::atomic<uint64_t> commits{0}, task_rows{0}, writes{0}, failed_commits{0}, reconnects{0},
      dropped_rows{0}, retention_deleted{0}, commit_us{0}, hangs{0}, ledger_rows{0}, ledger_us{0},
      ledger_rows_with_task{0};

  std::thread writer;
  std::thread reader;
  std::thread watchdog;

  void Reply(StoreReply reply) {
    {
      MutexLock lock(&mu);
      outbox.push_back(std::move(reply));
    }
    pg::Signal(loop_wake);
  }
};

namespace pg {

// pg_advisory_lock key held by the broker that owns a database ("rmabrk" in ASCII); brokers with
// --ha do not take it (the lease decides), but look whether a broker without --ha holds it.
inline constexpr int64_t kBrokerLockKey = 0x726d6162726b;

// The tasks columns, in the order of the staging COPY rows and of SelectColumns().
extern const std::vector<std::string> kTaskColumns;
// Columns a state change may touch (payload, service, priority and the like never change).
extern const std::vector<std::string> kMutableColumns;
// The upsert of new task rows, from `rows` (a SELECT or a VALUES list of kTaskColumns): a row that
// exists (a retried batch) takes the new state of its mutable columns.
std::string InsertTasks(std::string_view rows);

// The select list RecordFromRow reads; `payload` and `result` may be replaced by NULL when the
// caller does not need them.
std::string SelectColumns(bool payload, bool result);
// A timestamp column as microseconds since the epoch.
std::string Micros(const std::string& column);
// `format` with every "%" replaced by the item, joined by ", ".
std::string Join(const std::vector<std::string>& items, const std::string& format);
// A database error message on one line, for logs and replies (libpq's span several).
std::string OneLine(const std::string& message);

std::string Text(const pqxx::field& f);
int64_t Int(const pqxx::field& f);
std::string ByteaOf(const pqxx::field& f);
Time TimeOf(const pqxx::field& f);
TaskRecord RecordFromRow(const pqxx::row& row);
// The task browser's listing (LIST with the console's filters, console.h).
std::string ListSql(pqxx::transaction_base& tx, const ListFilter& f);

// Whether a database error is worth retrying as it is (the connection, the server or a transient
// conflict) rather than a refusal of the data itself.
bool IsTransient(const pqxx::sql_error& e);

// `role` (writer-<instance>, reader, recovery) becomes the session's application_name.
std::unique_ptr<pqxx::connection> Connect(const std::string& url, const std::string& role);
// Takes the per-database broker lock on `conn` (held for the connection's life).
bool TakeBrokerLock(pqxx::connection& conn);
// Ends other sessions named `application_name` (this process's lost writer sessions); returns how
// many.
int EndStaleSessions(pqxx::connection& conn, const std::string& application_name);
// High availability (pg_lease.cc): the statement that fences a write transaction with `epoch`
// (schemas/sql/009_ha.sql), whether an error is that fence, and the settings of the writer's and
// the reader's sessions (rma.epoch, which fences every statement on the account tables).
std::string FenceSql(int64_t epoch);
bool IsFenced(const pqxx::sql_error& e);
void PrepareHaSession(pqxx::connection& conn, const PgStoreOptions& options);
// Brokers with and without --ha on one database would both write: FailedPrecondition when `ha` and
// a broker without --ha holds the broker lock, or when not `ha` and a live lease is on record.
Status CheckOneMode(pqxx::connection& conn, bool ha);
// Applies the missing migrations (EmbeddedMigrations()), each in its own transaction.
Status Migrate(pqxx::connection& conn);
// Session set-up, again after every reconnect: the writer's staging table and statements, the
// reader's statements.
void PrepareWriter(pqxx::connection& conn);
void PrepareReader(pqxx::connection& conn);

// The thread bodies; they return when Shared::stopping is set (the writer after draining).
// pg_accounts.cc: the keys and credentials the broker loop keeps; one account action in its own
// transaction (the snapshot read back after a change); the first admin account.
AccountsSnapshot LoadAccounts(pqxx::transaction_base& tx);
void ExecuteAccount(pqxx::connection& conn, const AccountRequest& request, AccountAnswer* answer);
Result<std::optional<std::string>> BootstrapAdmin(pqxx::connection& conn);

// pg_ledger.cc: the statement that records credit ledger rows and moves the balances with them
// ("" for none), for a few rows in a multi-statement batch; WriteLedgerRows does the same for any
// number through COPY into the writer's staging table (LedgerStageSql, LedgerFromStageSql,
// LedgerInsertStagedSql, LedgerCreditStagedSql: made and prepared by PrepareWriter).
// `tolerate_duplicates` false: a row already on record fails the transaction (unique_violation)
// instead of being skipped; faster, for the group commit (once per transaction: the stage is only
// emptied at commit), whose careful path passes true.
//
// `spent_in_task_stage` (group commit only): some spent rows ride in the task stage instead
// (rma_stage's SpentStageColumns, filled by the writer for entries SpentRidesWithTask accepts):
// a task's row already carries the spent row's task, owner, service, attempt, worker and time, so
// COPYing only the amount and compute time there spares the row its own COPY. `entries` are then
// the other rows; both are inserted and the balances move by both stages' sums.
std::string LedgerSql(pqxx::transaction_base& tx, const std::vector<LedgerEntry>& entries);
void WriteLedgerRows(pqxx::transaction_base& tx, const std::vector<LedgerEntry>& entries,
                     bool tolerate_duplicates, bool spent_in_task_stage = false);
// Whether spent entry `e` can ride in `task`'s stage row: every column it would take from the task
// row is what the entry says.
bool SpentRidesWithTask(const LedgerEntry& e, const TaskRecord& task);
// The stage columns after kTaskColumns, and their values for a task row (nullptr: no spent row).
const std::vector<std::string>& SpentStageColumns();
std::tuple<std::optional<std::string>, std::optional<double>> SpentStageValues(
    const LedgerEntry* spent);
// The earned rows of the last 8 half-lives (older ones weigh under 1/256) per account and
// service, each halved per half-life of age (RecentEarnings).
std::vector<RecentEarnings> LoadRecentEarnings(pqxx::transaction_base& tx, Duration half_life);
// Worker credentials' lasting trust states (schemas/sql/007_worker_trust.sql): written (or, for
// state "", deleted) in the group commit, read back at start.
void WriteTrustRow(pqxx::transaction_base& tx, const TrustRecord& record);
std::vector<TrustRecord> LoadTrust(pqxx::transaction_base& tx);
std::string LedgerStageSql();
std::string LedgerFromStageSql();
std::string LedgerInsertStagedSql();
std::string LedgerCreditStagedSql();
std::string LedgerInsertSpentStagedSql();
std::string LedgerCreditBothStagedSql();
// An account's credits for GET /api/account: earned and spent today, this week and in all, what
// was granted, and its latest ledger rows.
nlohmann::json CreditSummary(pqxx::transaction_base& tx, const std::string& account);
// A column of Micros() as an RFC 3339 string for the JSON documents; null for NULL (never).
nlohmann::json Timestamp(const pqxx::field& micros);
// A grant or adjustment (`grant.kind`) of an account on record: its row and the new balance.
Result<nlohmann::json> GrantCredits(pqxx::transaction_base& tx, const LedgerEntry& grant);
// The accounts that earned most in `period` (day | week | all), ranked `by` credits | tasks |
// compute, each with its workers.
Result<nlohmann::json> Leaderboard(pqxx::transaction_base& tx, std::string_view period,
                                   std::string_view by, size_t limit);

void RunWriter(PgStore::Shared& shared, std::unique_ptr<pqxx::connection> conn);
void RunReader(PgStore::Shared& shared);
void RunWatchdog(PgStore::Shared& shared);

// Shows one database call of the writer or the reader (`since` is its Shared::*_call_since) to
// the watchdog for the scope. When the store was marked hung and no call is stuck any more, it is
// usable again (pg_watchdog.cc).
class CallWatch {
 public:
  CallWatch(PgStore::Shared& shared, std::atomic<int64_t>& since);
  ~CallWatch();
  CallWatch(const CallWatch&) = delete;
  CallWatch& operator=(const CallWatch&) = delete;

 private:
  PgStore::Shared& s_;
  std::atomic<int64_t>& since_;
};

}  // namespace pg
}  // namespace rma::broker
