// See pg_store.h, and pg_internal.h for how the store's files divide the work. This file is the
// broker loop's side: it only appends to queues and reads what the store's threads published.
// pqxx exceptions are caught in the store's files and become a Status, an error reply or a
// reconnect, never anything the scheduler sees.
#include "broker/pg_store.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <random>

#include "broker/pg_internal.h"
#include "broker/pg_values.h"

namespace rma::broker {

using pg::Connect;
using pg::Drain;
using pg::Int;
using pg::Migrate;
using pg::OneLine;
using pg::PrepareWriter;
using pg::RecordFromRow;
using pg::SelectColumns;
using pg::Signal;
using pg::TakeBrokerLock;

namespace {

// A read of `kind` for `client` (`ref`: the reference its answer carries; 0 if none). Enqueue
// stamps it with the time.
PgStore::ReadRequest NewRead(PgStore::ReadRequest::Kind kind, const std::string& client,
                             uint64_t ref) {
  PgStore::ReadRequest r;
  r.kind = kind;
  r.client = client;
  r.ref = ref;
  return r;
}

double PerCommitMs(uint64_t us, uint64_t commits) {
  return commits == 0 ? 0.0 : static_cast<double>(us) / 1000.0 / static_cast<double>(commits);
}

}  // namespace

Result<std::unique_ptr<PgStore>> PgStore::Open(PgStoreOptions options, const Clock* clock,
                                               int stop_fd) {
  if (options.url.empty()) return Status::InvalidArgument("no database URL");
  auto deadline = std::chrono::steady_clock::now() + options.connect_wait;
  Duration backoff = options.reconnect_min;
  std::unique_ptr<pqxx::connection> conn;
  // The writer's application_name is unique to this process (see EndStaleSessions).
  std::mt19937_64 rng(std::random_device{}());
  char instance[16];
  std::snprintf(instance, sizeof instance, "%08llx",
                static_cast<unsigned long long>(rng() & 0xffffffffULL));
  const std::string writer_role = std::string("writer-") + instance;
  for (int attempt = 1;; ++attempt) {
    std::string why;
    try {
      conn = Connect(options.url, writer_role);
      // With --ha the lease decides who writes, and the epoch fences the rest; a paused old
      // leader's session may hold the broker lock for as long as it is paused.
      if (options.ha_epoch != 0) {
        pg::PrepareHaSession(*conn, options);
        break;
      }
      if (TakeBrokerLock(*conn)) break;
      why = "another rma-broker is using this database (it holds the broker lock)";
      conn.reset();
    } catch (const std::exception& e) {
      why = OneLine(e.what());
      conn.reset();
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return Status::Unavailable("cannot use the database at " + RedactUrl(options.url) + ": " +
                                 why);
    }
    if (attempt == 1 || attempt % 10 == 0) {
      spdlog::warn("waiting for the database at {}: {}", RedactUrl(options.url), why);
    }
    pollfd pfd{stop_fd, POLLIN, 0};
    if (poll(&pfd, stop_fd >= 0 ? 1 : 0, static_cast<int>(ToMs(backoff))) > 0) {
      return Status::Cancelled("stopped while waiting for the database");
    }
    backoff = std::min(backoff * 2, options.reconnect_max);
  }
  try {
    RMA_RETURN_IF_ERROR(pg::CheckOneMode(*conn, options.ha_epoch != 0));
    RMA_RETURN_IF_ERROR(Migrate(*conn));
    PrepareWriter(*conn);
  } catch (const std::exception& e) {
    return Status::Unavailable("preparing the database: " + OneLine(e.what()));
  }

  auto shared = std::make_unique<Shared>();
  shared->options = std::move(options);
  shared->clock = clock;
  shared->writer_role = writer_role;
  shared->writer_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  shared->loop_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (shared->writer_wake < 0 || shared->loop_wake < 0) {
    if (shared->writer_wake >= 0) close(shared->writer_wake);
    if (shared->loop_wake >= 0) close(shared->loop_wake);
    return Status::Internal("eventfd failed");
  }
  Shared* s = shared.get();
  s->writer = std::thread([s, c = std::move(conn)]() mutable { pg::RunWriter(*s, std::move(c)); });
  s->reader = std::thread([s] { pg::RunReader(*s); });
  s->watchdog = std::thread([s] { pg::RunWatchdog(*s); });
  return std::unique_ptr<PgStore>(new PgStore(std::move(shared)));
}

PgStore::PgStore(std::unique_ptr<Shared> shared)
    : shared_(std::move(shared)), pending_(std::make_unique<Pending>()) {}

PgStore::~PgStore() {
  Flush();
  {
    MutexLock lock(&shared_->mu);
    shared_->stopping = true;
  }
  Signal(shared_->writer_wake);
  shared_->reader_cv.SignalAll();
  shared_->watchdog_cv.SignalAll();
  shared_->writer.join();
  shared_->reader.join();
  shared_->watchdog.join();
  close(shared_->writer_wake);
  close(shared_->loop_wake);
  PgStoreCounters c = counters();
  spdlog::info(
      "store: {} commit(s) of {} task row(s) for {} write(s), {:.2f} ms per commit; {} failed, {} "
      "reconnect(s); {} credit ledger row(s), {:.2f} ms per commit writing them ({} spent row(s) "
      "with their task's row)",
      c.commits, c.task_rows, c.writes, PerCommitMs(c.commit_us, c.commits), c.failed_commits,
      c.reconnects, c.ledger_rows, PerCommitMs(c.ledger_us, c.commits), c.ledger_rows_with_task);
}

Result<RecoveredState> PgStore::Recover() {
  RecoveredState state;
  try {
    auto conn = Connect(shared_->options.url, "recovery");
    pqxx::work tx(*conn);
    // In pieces through a cursor, so a long queue never sits in memory twice.
    tx.exec("DECLARE rma_recover NO SCROLL CURSOR FOR SELECT " + SelectColumns(true, true) +
            " FROM tasks WHERE status IN ('queued', 'running', 'failed') "
            "ORDER BY priority DESC, created_at, task_id");
    for (;;) {
      pqxx::result rows = tx.exec("FETCH 5000 FROM rma_recover");
      if (rows.empty()) break;
      for (const pqxx::row& row : rows) state.tasks.push_back(RecordFromRow(row));
    }
    tx.exec("CLOSE rma_recover");
    state.accounts = pg::LoadAccounts(tx);
    state.earned_recently = pg::LoadRecentEarnings(tx, shared_->options.contribution_half_life);
    state.trust = pg::LoadTrust(tx);
    tx.commit();
  } catch (const std::exception& e) {
    return Status::Unavailable("reading unfinished tasks: " + OneLine(e.what()));
  }
  spdlog::info("store: {} unfinished task(s) on record; {} API key(s), {} worker credential(s)",
               state.tasks.size(), state.accounts->keys.size(), state.accounts->credentials.size());
  return state;
}

uint64_t PgStore::Write(TaskWrite write) {
  ++seq_;
  pending_->tasks.emplace_back(seq_, std::move(write));
  pending_->max_seq = seq_;
  return seq_;
}

void PgStore::WriteWorker(WorkerRecord record) {
  pending_->workers.push_back(std::move(record));
  pending_->max_seq = ++seq_;
}

void PgStore::WriteStats(std::vector<ServiceMinuteStats> rows) {
  if (rows.empty()) return;
  for (ServiceMinuteStats& r : rows) pending_->stats.push_back(std::move(r));
  pending_->max_seq = ++seq_;
}

void PgStore::WriteTrust(TrustRecord record) {
  pending_->trust.push_back(std::move(record));
  pending_->max_seq = ++seq_;
}

void PgStore::WriteLedger(std::vector<LedgerEntry> entries) {
  if (entries.empty()) return;
  for (LedgerEntry& e : entries) pending_->ledger.push_back(std::move(e));
  pending_->max_seq = ++seq_;
}

void PgStore::Flush() {
  if (pending_->empty()) return;
  {
    MutexLock lock(&shared_->mu);
    shared_->inbox.push_back(std::move(*pending_));
  }
  *pending_ = Pending{};
  Signal(shared_->writer_wake);
}

void PgStore::Enqueue(ReadRequest request) {
  request.after_seq = seq_;
  request.now = shared_->clock->Now();
  {
    MutexLock lock(&shared_->mu);
    shared_->reads.push_back(std::move(request));
  }
  shared_->reader_cv.SignalAll();
}

void PgStore::LookupTask(const std::string& client, uint64_t ref, TaskId id, const Caller& caller) {
  ReadRequest r = NewRead(ReadRequest::Kind::kGet, client, ref);
  r.id = id;
  r.caller = caller;
  Enqueue(std::move(r));
}

void PgStore::ListTasks(const std::string& client, const proto::List& query) {
  ReadRequest r = NewRead(ReadRequest::Kind::kList, client, 0);
  r.list = query;
  Enqueue(std::move(r));
}

void PgStore::SubmitWithKey(const std::string& client, proto::Submit submit) {
  ReadRequest r = NewRead(ReadRequest::Kind::kKey, client, 0);
  r.submit = std::move(submit);
  Enqueue(std::move(r));
}

void PgStore::AdminDeadTask(const std::string& client, uint64_t ref, TaskId id, bool retry) {
  ReadRequest r = NewRead(ReadRequest::Kind::kDeadTask, client, ref);
  r.id = id;
  r.retry = retry;
  Enqueue(std::move(r));
}

void PgStore::Stats(const std::string& client, uint64_t ref,
                    std::vector<ServiceMinuteStats> pending) {
  ReadRequest r = NewRead(ReadRequest::Kind::kStats, client, ref);
  r.pending = std::move(pending);
  Enqueue(std::move(r));
}

void PgStore::Console(const std::string& client, ConsoleRequest request) {
  ReadRequest r = NewRead(ReadRequest::Kind::kConsole, client, request.ref);
  r.console = std::move(request);
  Enqueue(std::move(r));
}

void PgStore::Account(const std::string& client, AccountRequest request) {
  ReadRequest r = NewRead(ReadRequest::Kind::kAccount, client, request.ref);
  r.account = std::move(request);
  Enqueue(std::move(r));
}

Result<std::optional<std::string>> PgStore::BootstrapAdmin() {
  try {
    auto conn = Connect(shared_->options.url, "bootstrap");
    return pg::BootstrapAdmin(*conn);
  } catch (const std::exception& e) {
    return Status::Unavailable("--bootstrap-admin: " + OneLine(e.what()));
  }
}

int PgStore::poll_fd() const { return shared_->loop_wake; }

void PgStore::OnReadable(std::vector<StoreReply>* replies) {
  Drain(shared_->loop_wake);
  MutexLock lock(&shared_->mu);
  durable_seq_ = shared_->durable_seq;
  available_ = shared_->usable();
  for (StoreReply& r : shared_->outbox) replies->push_back(std::move(r));
  shared_->outbox.clear();
}

PgStoreCounters PgStore::counters() const {
  PgStoreCounters c;
  c.commits = shared_->commits;
  c.task_rows = shared_->task_rows;
  c.writes = shared_->writes;
  c.failed_commits = shared_->failed_commits;
  c.reconnects = shared_->reconnects;
  c.dropped_rows = shared_->dropped_rows;
  c.retention_deleted = shared_->retention_deleted;
  c.commit_us = shared_->commit_us;
  c.hangs = shared_->hangs;
  c.ledger_rows = shared_->ledger_rows;
  c.ledger_us = shared_->ledger_us;
  c.ledger_rows_with_task = shared_->ledger_rows_with_task;
  return c;
}

}  // namespace rma::broker
