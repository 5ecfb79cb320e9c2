// See pg_internal.h: the writer thread of the PostgreSQL store. It owns the writer connection and
// the batch: everything the loop flushed since the last commit, coalesced per task (insert + start
// + completion of a fast task become one row), COPYed into a temporary table and applied with one
// INSERT ... ON CONFLICT and one UPDATE, in one transaction. A small batch of task rows alone (what
// an idle pool writes) goes instead as one multi-statement query: one round trip and the commit,
// where BEGIN, COPY, INSERT/UPDATE and COMMIT take five, which is most of a lone task's durable
// acknowledgement. A failed batch is kept and retried.
#include <fmt/format.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <tuple>
#include <type_traits>
#include <unordered_map>

#include "broker/pg_internal.h"
#include "broker/pg_values.h"

namespace rma::broker::pg {

using proto::TaskStatus;
using Shared = PgStore::Shared;

namespace {

std::optional<std::string> OptText(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return CleanText(s);
}
std::optional<std::string> OptTime(Time t) {
  if (t.time_since_epoch().count() <= 0) return std::nullopt;
  return PgTimestamp(t);
}
int64_t Clamp32(uint64_t v) { return static_cast<int64_t>(std::min<uint64_t>(v, INT32_MAX)); }

// Batches of at most this many task rows, and nothing else, take the one-query path (see above):
// beyond it COPY is cheaper per row, and the query text stays small.
constexpr size_t kSmallBatchRows = 16;
// A batch nobody waits for — state changes only, no new task whose ACCEPTED waits for the commit —
// is held this long for more writes to join it, unless it has grown to kLingerRows. One task at a
// time, the completion of one task then shares the commit of the next one's insert, instead of
// being a commit that the next acknowledgement queues behind. (A crash in that moment loses the
// completion, and the task runs again after recovery, as one whose commit had not returned.)
constexpr auto kUpdateLinger = std::chrono::milliseconds(1);
constexpr size_t kLingerRows = 1000;

template <typename T>
struct IsOptional : std::false_type {};
template <typename T>
struct IsOptional<std::optional<T>> : std::true_type {};

// One value of a StageRow as an SQL literal. Every value is a quoted string literal (or NULL): its
// type is taken from the column it is assigned to, as COPY's text format does.
template <typename T>
std::string Literal(pqxx::transaction_base& tx, const T& v) {
  if constexpr (IsOptional<T>::value) {
    return v ? Literal(tx, *v) : std::string("NULL");
  } else if constexpr (std::is_same_v<T, std::string>) {
    return tx.quote(v);
  } else if constexpr (std::is_floating_point_v<T>) {
    return tx.quote(fmt::format("{}", v));  // shortest text that reads back exactly
  } else {
    return tx.quote(std::to_string(v));
  }
}

// A StageRow's values as SQL literals, in kTaskColumns order.
template <typename Tuple>
std::vector<std::string> Literals(pqxx::transaction_base& tx, const Tuple& row) {
  std::vector<std::string> out;
  out.reserve(std::tuple_size_v<Tuple>);
  std::apply([&](const auto&... v) { (out.push_back(Literal(tx, v)), ...); }, row);
  return out;
}

// One COPY row of rma_stage (the tasks columns). A NULL payload marks a state change of a row
// that already exists; a payload marks a row to insert.
auto StageRow(const TaskRecord& r, bool with_payload) {
  std::optional<std::string> payload;
  if (with_payload) payload = ByteaHex(r.payload);
  std::optional<std::string> result;
  if (r.status == TaskStatus::kCompleted) result = ByteaHex(r.result);
  std::optional<int64_t> http_status;
  if (r.http_status != 0) http_status = r.http_status;
  return std::make_tuple(
      static_cast<int64_t>(r.id.value()), CleanText(r.service),
      std::string(proto::TaskStatusName(r.status)),
      static_cast<int64_t>(std::min<uint32_t>(r.priority, 9)), payload, CleanText(r.content_type),
      Clamp32(r.max_attempts), static_cast<int64_t>(r.timeout_ms), OptText(r.idempotency_key),
      static_cast<int64_t>(std::min<uint32_t>(r.min_tier, 32767)), r.min_gpu_memory_gb,
      Clamp32(r.attempts), Clamp32(r.failures), Clamp32(r.requeues), OptText(r.worker_id), result,
      OptText(r.result_content_type), http_status, OptText(r.error), OptText(r.error_code),
      PgTimestamp(r.created_at), PgTimestamp(r.run_at), OptTime(r.started_at),
      OptTime(r.completed_at), CleanText(r.owner), CleanText(r.model), r.trusted_only, r.verified,
      OptText(AttemptLogJson(r.attempt_log)));
}

nlohmann::json CapabilitiesJson(const proto::Capabilities& c) {
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [k, v] : c.labels) labels[k] = v;
  return {{"cpu_cores", c.cpu_cores},
          {"cpu_model", c.cpu_model},
          {"ram_gb", c.ram_gb},
          {"disk_gb", c.disk_gb},
          {"has_gpu", c.has_gpu},
          {"gpu_type", c.gpu_type},
          {"gpu_memory_gb", c.gpu_memory_gb},
          {"gpu_count", c.gpu_count},
          {"os", c.os},
          {"arch", c.arch},
          {"worker_type", c.worker_type},
          {"labels", labels}};
}

class Writer {
 public:
  Writer(Shared& shared, std::unique_ptr<pqxx::connection> conn)
      : s_(shared), conn_(std::move(conn)), backoff_(shared.options.reconnect_min) {}

  void Run() {
    std::optional<std::chrono::steady_clock::time_point> drain_deadline;
    for (;;) {
      bool stopping = Collect();
      if (fenced_) {
        // Another broker leads (--ha): nothing of this one may reach the record any more.
        ClearBatch();
        if (stopping) return;
        Wait(std::nullopt);
        continue;
      }
      if (stopping && !drain_deadline) {
        drain_deadline = std::chrono::steady_clock::now() + s_.options.drain_wait;
      }
      if (!conn_ && std::chrono::steady_clock::now() >= next_connect_) Reconnect();
      if (conn_ && !BatchEmpty()) {
        if (!stopping && !Awaited()) {
          const auto now = std::chrono::steady_clock::now();
          if (!linger_until_) linger_until_ = now + kUpdateLinger;
          if (now < *linger_until_) {
            Wait(linger_until_);
            continue;
          }
        }
        linger_until_.reset();
        CommitBatch();
        continue;  // collect what arrived during the commit
      }
      if (stopping) {
        if (BatchEmpty()) return;
        if (std::chrono::steady_clock::now() >= *drain_deadline) {
          spdlog::error(
              "store: stopping with {} task write(s) not committed (database unavailable)",
              rows_.size());
          return;
        }
      }
      Wait(drain_deadline);
    }
  }

 private:
  struct Row {
    WriteKind kind = WriteKind::kUpdate;
    TaskRecord record;
    uint64_t insert_seq = 0;  // for an insert: its sequence number
  };
  struct WorkerTotals {
    Time first_seen{};
    uint64_t done = 0;
    uint64_t failed = 0;
    double busy = 0;
  };
  enum class Outcome { kOk, kTransient, kRefused, kFenced };

  // Takes everything the loop flushed into the current batch, coalescing per task. Returns whether
  // the store is stopping.
  bool Collect() {
    std::vector<PgStore::Pending> taken;
    bool stopping;
    {
      MutexLock lock(&s_.mu);
      taken.swap(s_.inbox);
      stopping = s_.stopping;
    }
    for (PgStore::Pending& p : taken) Absorb(std::move(p));
    return stopping;
  }

  void Absorb(PgStore::Pending&& p) {
    max_seq_ = std::max(max_seq_, p.max_seq);
    s_.writes += p.tasks.size();
    for (auto& [seq, write] : p.tasks) {
      uint64_t id = write.record.id.value();
      auto [it, fresh] = index_.try_emplace(id, rows_.size());
      if (fresh) {
        rows_.push_back(
            Row{write.kind, std::move(write.record), write.kind == WriteKind::kInsert ? seq : 0});
        continue;
      }
      Row& row = rows_[it->second];
      switch (write.kind) {
        case WriteKind::kInsert:  // a task id is never inserted twice; keep the newest state
        case WriteKind::kUpdate: {
          if (row.kind == WriteKind::kInsert) {
            // Insert + update in one batch: one row with the latest state and the payload.
            Bytes payload = std::move(row.record.payload);
            std::string content_type = std::move(row.record.content_type);
            row.record = std::move(write.record);
            row.record.payload = std::move(payload);
            row.record.content_type = std::move(content_type);
          } else {
            row.record = std::move(write.record);
            row.kind = WriteKind::kUpdate;
          }
          break;
        }
        case WriteKind::kDelete:
          row.kind = WriteKind::kDelete;
          row.insert_seq = 0;
          break;
      }
    }
    for (WorkerRecord& w : p.workers) {
      std::string id = w.worker_id;
      workers_[id] = std::move(w);
    }
    for (ServiceMinuteStats& st : p.stats) {
      auto key = std::make_pair(ToUnixMs(st.minute), st.service);
      auto [it, fresh] = stats_.try_emplace(key, st);
      if (!fresh) it->second.Merge(st);
    }
    for (LedgerEntry& e : p.ledger) ledger_.push_back(std::move(e));
    for (TrustRecord& t : p.trust) {
      std::string key = t.credential;
      trust_[key] = std::move(t);  // the latest word on a credential wins
    }
  }

  bool BatchEmpty() const {
    return rows_.empty() && workers_.empty() && stats_.empty() && ledger_.empty() && trust_.empty();
  }

  void ClearBatch() {
    rows_.clear();
    index_.clear();
    workers_.clear();
    stats_.clear();
    ledger_.clear();
    trust_.clear();
  }

  void CommitBatch() {
    std::vector<std::pair<TaskId, std::string>> unrecorded;
    std::map<std::string, WorkerTotals> written;
    auto started = std::chrono::steady_clock::now();
    CallWatch watch(s_, s_.writer_call_since);
    batch_ledger_us_ = 0;
    batch_spent_with_task_ = 0;
    ledger_replayed_ = false;
    Outcome outcome = Commit(/*careful=*/false, &unrecorded, &written);
    s_.commit_us += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                              std::chrono::steady_clock::now() - started)
                                              .count());
    if (outcome == Outcome::kFenced) return Fenced();
    if (outcome == Outcome::kRefused) {
      ++s_.failed_commits;
      batch_ledger_us_ = 0;
      batch_spent_with_task_ = 0;
      if (ledger_replayed_) {
        // The group commit's ledger insert refuses rows already on record (pg_ledger.cc): a
        // commit replayed after its outcome was unknown. The careful commit skips them.
        spdlog::warn(
            "store: a credit ledger row of this batch is already on record ({}); writing the "
            "batch row by row, without it",
            last_error_);
      } else {
        spdlog::error(
            "store: the database refused a batch of {} task row(s): {}; retrying row by row",
            rows_.size(), last_error_);
      }
      unrecorded.clear();
      written.clear();
      outcome = Commit(/*careful=*/true, &unrecorded, &written);
    }
    if (outcome == Outcome::kTransient) {
      ++s_.failed_commits;
      Lost(last_error_);
      return;
    }
    ++s_.commits;
    s_.task_rows += rows_.size();
    s_.ledger_rows += ledger_.size();
    s_.ledger_us += batch_ledger_us_;
    s_.ledger_rows_with_task += batch_spent_with_task_;
    for (auto& [id, totals] : written) worker_written_[id] = totals;
    {
      MutexLock lock(&s_.mu);
      for (auto& [id, why] : unrecorded) {
        StoreReply r;
        r.unrecorded = id;
        s_.outbox.push_back(std::move(r));
      }
      s_.durable_seq = std::max(s_.durable_seq, max_seq_);
    }
    s_.reader_cv.SignalAll();
    Signal(s_.loop_wake);
    ClearBatch();
  }

  // Writes the batch in one transaction. `careful`: every row in its own subtransaction, and rows
  // the database refuses are dropped (logged, counted, reported in `unrecorded` for inserts) so the
  // rest goes through.
  Outcome Commit(bool careful, std::vector<std::pair<TaskId, std::string>>* unrecorded,
                 std::map<std::string, WorkerTotals>* written) {
    try {
      if (!careful && SmallBatch()) return CommitSmallBatch();
      pqxx::work tx(*conn_);
      if (s_.options.ha_epoch != 0) tx.exec(FenceSql(s_.options.ha_epoch));
      if (!careful) {
        // Spent rows that ride in their task's stage row (pg_ledger.cc), and the other rows.
        std::vector<const LedgerEntry*> spent;
        std::vector<LedgerEntry> others;
        const bool spent_in_stage = SplitLedger(&spent, &others);
        if (spent_in_stage) batch_spent_with_task_ = ledger_.size() - others.size();
        WriteTaskRows(tx, rows_, false, spent_in_stage ? &spent : nullptr);
        // A row already on record fails this transaction; the careful commit skips it.
        const auto ledger_started = std::chrono::steady_clock::now();
        try {
          WriteLedgerRows(tx, spent_in_stage ? others : ledger_, /*tolerate_duplicates=*/false,
                          spent_in_stage);
        } catch (const pqxx::unique_violation&) {
          ledger_replayed_ = true;
          throw;
        }
        batch_ledger_us_ =
            static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                      std::chrono::steady_clock::now() - ledger_started)
                                      .count());
      } else {
        for (Row& row : rows_) CarefulTaskRow(tx, row, unrecorded);
        CarefulLedger(tx);
      }
      for (auto& [id, w] : workers_) {
        if (!careful) {
          WriteWorker(tx, w, written);
          continue;
        }
        try {
          pqxx::subtransaction sub(tx, "rma_worker");
          WriteWorker(sub, w, written);
          sub.commit();
        } catch (const pqxx::sql_error& e) {
          if (IsTransient(e)) throw;
          Dropped("worker " + id, e.what());
        }
      }
      for (auto& [credential, t] : trust_) {
        if (!careful) {
          WriteTrustRow(tx, t);
          continue;
        }
        try {
          pqxx::subtransaction sub(tx, "rma_trust");
          WriteTrustRow(sub, t);
          sub.commit();
        } catch (const pqxx::sql_error& e) {
          if (IsTransient(e)) throw;
          Dropped("trust of a worker credential", e.what());
        }
      }
      for (auto& [key, st] : stats_) {
        if (!careful) {
          WriteStats(tx, st);
          continue;
        }
        try {
          pqxx::subtransaction sub(tx, "rma_stats");
          WriteStats(sub, st);
          sub.commit();
        } catch (const pqxx::sql_error& e) {
          if (IsTransient(e)) throw;
          Dropped("statistics of " + st.service, e.what());
        }
      }
      tx.commit();
      return Outcome::kOk;
    } catch (const pqxx::broken_connection& e) {
      last_error_ = OneLine(e.what());
      return Outcome::kTransient;
    } catch (const pqxx::in_doubt_error& e) {
      // The commit may or may not have happened: every write is idempotent (upserts of whole
      // states) except the statistics increments, which may count twice.
      last_error_ = OneLine(e.what());
      return Outcome::kTransient;
    } catch (const pqxx::sql_error& e) {
      last_error_ = OneLine(e.what());
      if (IsFenced(e)) return Outcome::kFenced;
      return IsTransient(e) || careful ? Outcome::kTransient : Outcome::kRefused;
    } catch (const std::exception& e) {
      last_error_ = OneLine(e.what());
      return Outcome::kTransient;
    }
  }

  // Whether someone waits for this batch's commit: a new task's ACCEPTED does; so does a batch
  // grown past kLingerRows (committing it keeps batches bounded).
  bool Awaited() const {
    return rows_.size() >= kLingerRows || std::any_of(rows_.begin(), rows_.end(), [](const Row& r) {
             return r.kind == WriteKind::kInsert;
           });
  }

  bool SmallBatch() const {
    return rows_.size() <= kSmallBatchRows && ledger_.size() <= 2 * kSmallBatchRows &&
           workers_.empty() && stats_.empty() && trust_.empty() &&
           std::none_of(rows_.begin(), rows_.end(),
                        [](const Row& r) { return r.kind == WriteKind::kDelete; });
  }

  // The batch as one query of several statements, which PostgreSQL runs as one transaction (an
  // error anywhere rolls all of it back, as in the COPY path): the same INSERT ... ON CONFLICT for
  // new tasks, and one UPDATE per state change.
  Outcome CommitSmallBatch() {
    pqxx::nontransaction tx(*conn_);
    std::string inserts;
    std::string sql;
    for (const Row& row : rows_) {
      const bool insert = row.kind == WriteKind::kInsert;
      std::vector<std::string> values = Literals(tx, StageRow(row.record, insert));
      if (insert) {
        inserts += inserts.empty() ? "(" : ",(";
        for (size_t i = 0; i < values.size(); ++i) inserts += (i == 0 ? "" : ",") + values[i];
        inserts += ")";
        continue;
      }
      sql += "UPDATE tasks SET ";
      for (size_t i = 0; i < kMutableColumns.size(); ++i) {
        sql += (i == 0 ? "" : ", ") + kMutableColumns[i] + " = " + values[MutableIndex()[i]];
      }
      sql += " WHERE task_id = " + values[0] + ";";
    }
    if (!inserts.empty()) {
      sql = InsertTasks("VALUES " + inserts) + ";" + sql;
    }
    if (s_.options.ha_epoch != 0) sql = FenceSql(s_.options.ha_epoch) + ";" + sql;
    // The ledger rows of these completions, in the same implicit transaction.
    if (!ledger_.empty()) sql += LedgerSql(tx, ledger_) + ";";
    tx.exec(sql);
    return Outcome::kOk;
  }

  // Where each of kMutableColumns is in kTaskColumns.
  static const std::vector<size_t>& MutableIndex() {
    static const std::vector<size_t> index = [] {
      std::vector<size_t> out;
      for (const std::string& c : kMutableColumns) {
        out.push_back(static_cast<size_t>(std::find(kTaskColumns.begin(), kTaskColumns.end(), c) -
                                          kTaskColumns.begin()));
      }
      return out;
    }();
    return index;
  }

  // Which ledger entries ride in their task's stage row: (*spent)[i] is rows_[i]'s spent entry or
  // nullptr; `others` the entries that do not. False (`others` left empty) when none does.
  bool SplitLedger(std::vector<const LedgerEntry*>* spent, std::vector<LedgerEntry>* others) const {
    spent->assign(rows_.size(), nullptr);
    std::vector<size_t> kept;  // ledger_ indexes of the entries that keep their own row
    for (size_t i = 0; i < ledger_.size(); ++i) {
      const LedgerEntry& e = ledger_[i];
      auto it = e.kind == "spent" ? index_.find(e.task_id.value()) : index_.end();
      // A task has one spent row (the ledger's index says so): a second one keeps its own.
      if (it != index_.end() && (*spent)[it->second] == nullptr &&
          rows_[it->second].kind != WriteKind::kDelete &&
          SpentRidesWithTask(e, rows_[it->second].record)) {
        (*spent)[it->second] = &e;
      } else {
        kept.push_back(i);
      }
    }
    if (kept.size() == ledger_.size()) return false;
    for (size_t i : kept) others->push_back(ledger_[i]);
    return true;
  }

  // `spent`: for each of `rows`, the spent ledger entry its stage row carries (nullptr: none).
  void WriteTaskRows(pqxx::transaction_base& tx, const std::vector<Row>& rows, bool clear_stage,
                     const std::vector<const LedgerEntry*>* spent = nullptr) {
    std::vector<uint64_t> deletes;
    size_t inserts = 0;
    size_t updates = 0;
    for (const Row& row : rows) {
      if (row.kind == WriteKind::kDelete) {
        deletes.push_back(row.record.id.value());
      } else if (row.kind == WriteKind::kInsert) {
        ++inserts;
      } else {
        ++updates;
      }
    }
    // Deletes first: a discarded task frees its idempotency key for a task inserted after it.
    if (!deletes.empty()) tx.exec_prepared("rma_delete_tasks", IdArrayLiteral(deletes));
    if (inserts + updates == 0) return;
    {
      // Without spent rows the extra columns are left out (NULL), not sent.
      static const std::vector<std::string> with_spent = [] {
        std::vector<std::string> c = kTaskColumns;
        c.insert(c.end(), SpentStageColumns().begin(), SpentStageColumns().end());
        return c;
      }();
      pqxx::stream_to copy(tx, "rma_stage", spent != nullptr ? with_spent : kTaskColumns);
      for (size_t i = 0; i < rows.size(); ++i) {
        const Row& row = rows[i];
        if (row.kind == WriteKind::kDelete) continue;
        if (spent == nullptr) {
          copy << StageRow(row.record, row.kind == WriteKind::kInsert);
        } else {
          copy << std::tuple_cat(StageRow(row.record, row.kind == WriteKind::kInsert),
                                 SpentStageValues((*spent)[i]));
        }
      }
      copy.complete();
    }
    if (inserts > 0) tx.exec_prepared("rma_insert_staged");
    if (updates > 0) {
      pqxx::result r = tx.exec_prepared("rma_update_staged");
      if (r.affected_rows() < updates) {
        // The row is gone (retention or an admin discard while the task was still in memory).
        spdlog::warn("store: {} state change(s) found no task row", updates - r.affected_rows());
      }
    }
    if (clear_stage) tx.exec_prepared("rma_clear_stage");
  }

  void CarefulTaskRow(pqxx::dbtransaction& tx, Row& row,
                      std::vector<std::pair<TaskId, std::string>>* unrecorded) {
    const std::string what = "task " + ToString(row.record.id);
    try {
      pqxx::subtransaction sub(tx, "rma_row");
      WriteTaskRows(sub, {row}, /*clear_stage=*/true);
      sub.commit();
      return;
    } catch (const pqxx::unique_violation& e) {
      if (row.kind != WriteKind::kInsert || row.record.idempotency_key.empty()) {
        Dropped(what, e.what());
        return;
      }
      // Its idempotency key is taken on record by another task (the scheduler and the record
      // disagree, which the lookup path should prevent): keep the task, without the key.
      spdlog::error(
          "store: {}: idempotency key '{}' already belongs to another task on record; "
          "recorded without it",
          what, CleanText(row.record.idempotency_key));
      row.record.idempotency_key.clear();
    } catch (const pqxx::sql_error& e) {
      if (IsTransient(e)) throw;
      Dropped(what, e.what());
      if (row.kind == WriteKind::kInsert) unrecorded->emplace_back(row.record.id, e.what());
      return;
    }
    try {
      pqxx::subtransaction sub(tx, "rma_row_again");
      WriteTaskRows(sub, {row}, /*clear_stage=*/true);
      sub.commit();
    } catch (const pqxx::sql_error& e) {
      if (IsTransient(e)) throw;
      Dropped(what, e.what());
      if (row.kind == WriteKind::kInsert) unrecorded->emplace_back(row.record.id, e.what());
    }
  }

  // The ledger rows one by one, each with its balance change: a row the database refuses (its
  // account gone) is dropped and logged, the others are kept.
  void CarefulLedger(pqxx::dbtransaction& tx) {
    for (const LedgerEntry& e : ledger_) {
      try {
        pqxx::subtransaction sub(tx, "rma_ledger");
        WriteLedgerRows(sub, {e}, /*tolerate_duplicates=*/true);
        sub.commit();
      } catch (const pqxx::sql_error& err) {
        if (IsTransient(err)) throw;
        Dropped("a credit ledger row of account " + e.account, err.what());
      }
    }
  }

  void Dropped(const std::string& what, const char* why) {
    ++s_.dropped_rows;
    spdlog::error("store: the database refused {}: {}", what, OneLine(why));
  }

  // Worker totals restart from zero whenever the scheduler starts a new record of the worker (a
  // broker restart, or a worker forgotten and seen again); the table keeps lifetime totals, so
  // what is written is the increase since the last write of the same in-memory record.
  void WriteWorker(pqxx::transaction_base& tx, const WorkerRecord& w,
                   std::map<std::string, WorkerTotals>* written) {
    WorkerTotals now{w.first_seen, w.tasks_done, w.tasks_failed, w.busy_seconds};
    WorkerTotals before;
    auto it = worker_written_.find(w.worker_id);
    if (it != worker_written_.end() && it->second.first_seen == w.first_seen) before = it->second;
    auto inc = [](uint64_t a, uint64_t b) { return static_cast<int64_t>(a >= b ? a - b : a); };
    std::vector<std::string> services = w.services;
    tx.exec_prepared(
        "rma_upsert_worker", CleanText(w.worker_id), CleanText(w.name),
        static_cast<int>(std::clamp<uint32_t>(w.tier, 1, 3)), w.simulated,
        CapabilitiesJson(w.capabilities)
            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
        TextArrayLiteral(services),
        w.status == "draining" || w.status == "offline" ? w.status : std::string("online"),
        PgTimestamp(w.first_seen), PgTimestamp(w.last_seen), inc(now.done, before.done),
        inc(now.failed, before.failed),
        now.busy >= before.busy ? now.busy - before.busy : now.busy);
    (*written)[w.worker_id] = now;
  }

  void WriteStats(pqxx::transaction_base& tx, const ServiceMinuteStats& st) {
    auto opt = [](uint64_t n, double v) -> std::optional<double> {
      if (n == 0) return std::nullopt;
      return v;
    };
    tx.exec_prepared(
        "rma_upsert_stats", PgTimestamp(st.minute), CleanText(st.service),
        static_cast<int64_t>(st.submitted), static_cast<int64_t>(st.completed),
        static_cast<int64_t>(st.failed), static_cast<int64_t>(st.dead),
        static_cast<int64_t>(st.queue_wait_samples),
        opt(st.queue_wait_samples, st.queue_wait_p50_ms),
        opt(st.queue_wait_samples, st.queue_wait_p99_ms), static_cast<int64_t>(st.run_time_samples),
        opt(st.run_time_samples, st.run_time_p50_ms), opt(st.run_time_samples, st.run_time_p99_ms),
        st.queue_depth >= 0 ? std::optional<int64_t>(st.queue_depth) : std::nullopt);
  }

  // A write was fenced (--ha): another broker holds a newer epoch. The batch is dropped (the new
  // leader recovered from the record, without it), the store stays unavailable, and the lease is
  // told, so the broker loop stops serving at its next turn.
  void Fenced() {
    fenced_ = true;
    ++s_.failed_commits;
    spdlog::error("store: fenced: epoch {} no longer leads ({}); {} task row(s) dropped",
                  s_.options.ha_epoch, last_error_, rows_.size());
    ClearBatch();
    // The lease first: when the loop wakes to the unavailable store, it already leads no more.
    if (s_.options.on_fenced) s_.options.on_fenced(s_.options.ha_epoch);
    {
      MutexLock lock(&s_.mu);
      s_.available = false;
    }
    s_.reader_cv.SignalAll();
    Signal(s_.loop_wake);
  }

  // The connection is gone or unusable: the store is unavailable until Reconnect() succeeds.
  void Lost(const std::string& why) {
    conn_.reset();
    bool was_available;
    {
      MutexLock lock(&s_.mu);
      was_available = s_.available;
      s_.available = false;
    }
    if (was_available) {
      spdlog::error("store: lost the database ({}); refusing new tasks until it is back", why);
      s_.reader_cv.SignalAll();
      Signal(s_.loop_wake);
    }
    next_connect_ = std::chrono::steady_clock::now() + backoff_;
    backoff_ = std::min(backoff_ * 2, s_.options.reconnect_max);
  }

  void Reconnect() {
    CallWatch watch(s_, s_.writer_call_since);
    try {
      auto conn = Connect(s_.options.url, s_.writer_role);
      if (s_.options.ha_epoch != 0) {
        PrepareHaSession(*conn, s_.options);
      } else if (!TakeBrokerLock(*conn)) {
        int ended = EndStaleSessions(*conn, "rma-broker-" + s_.writer_role);
        throw std::runtime_error(
            ended > 0 ? "the broker lock was held by " + std::to_string(ended) +
                            " lost session(s) of this broker, now ended"
                      : std::string("another rma-broker holds this database's broker lock"));
      }
      PrepareWriter(*conn);
      conn_ = std::move(conn);
    } catch (const std::exception& e) {
      conn_.reset();
      next_connect_ = std::chrono::steady_clock::now() + backoff_;
      spdlog::warn("store: reconnecting to the database failed ({}); next try in {} ms",
                   OneLine(e.what()), ToMs(backoff_));
      backoff_ = std::min(backoff_ * 2, s_.options.reconnect_max);
      return;
    }
    ++s_.reconnects;
    backoff_ = s_.options.reconnect_min;
    {
      MutexLock lock(&s_.mu);
      s_.available = true;
    }
    spdlog::info("store: database connection restored; {} pending task row(s) to commit",
                 rows_.size());
    s_.reader_cv.SignalAll();
    Signal(s_.loop_wake);
  }

  // Sleeps until the loop flushes, the reconnect time comes, or (idle and connected) the server
  // closes the connection, which is noticed at once rather than at the next commit. An idle
  // connection is pinged every ping_interval, so a server that stopped answering is noticed (by
  // the watchdog) before the next task needs it.
  void Wait(std::optional<std::chrono::steady_clock::time_point> deadline) {
    pollfd fds[2] = {{s_.writer_wake, POLLIN, 0}, {-1, POLLIN, 0}};
    int timeout_ms = -1;
    bool ping_due = false;
    if (conn_) {
      fds[1].fd = conn_->sock();
      timeout_ms = static_cast<int>(std::max<int64_t>(0, ToMs(s_.options.ping_interval)));
      ping_due = true;
    } else {
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(next_connect_ -
                                                                   std::chrono::steady_clock::now())
                 .count()));
    }
    if (deadline) {
      // Rounded up: poll() counts whole milliseconds, and 0 would spin until the deadline.
      auto left =
          std::chrono::ceil<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now())
              .count();
      int d = static_cast<int>(std::max<int64_t>(0, left));
      if (timeout_ms < 0 || d < timeout_ms) {
        timeout_ms = d;
        ping_due = false;
      }
    }
    int n = poll(fds, fds[1].fd >= 0 ? 2 : 1, timeout_ms);
    if (n == 0 && ping_due) Ping();
    if (n <= 0) return;
    if (fds[0].revents & POLLIN) Drain(s_.writer_wake);
    if (fds[1].fd >= 0 && fds[1].revents != 0) {
      try {
        conn_->get_notifs();  // consumes what the server sent; throws if it hung up
      } catch (const std::exception& e) {
        Lost(OneLine(e.what()));
      }
    }
  }

  void Ping() {
    CallWatch watch(s_, s_.writer_call_since);
    try {
      pqxx::nontransaction tx(*conn_);
      tx.exec("SELECT 1");
    } catch (const std::exception& e) {
      Lost(OneLine(e.what()));
    }
  }

  Shared& s_;
  std::unique_ptr<pqxx::connection> conn_;
  std::chrono::steady_clock::time_point next_connect_{};
  Duration backoff_;
  std::string last_error_;
  bool fenced_ = false;  // see Fenced()

  // The batch: pending until committed, kept across failures (retried, never lost).
  std::vector<Row> rows_;
  std::unordered_map<uint64_t, size_t> index_;  // task id -> rows_ index
  std::map<std::string, WorkerRecord> workers_;
  std::map<std::pair<int64_t, std::string>, ServiceMinuteStats> stats_;
  std::vector<LedgerEntry> ledger_;  // credit rows of this batch, in order
  uint64_t batch_ledger_us_ = 0;  // time this batch's group commit spent on ledger_ (not careful)
  bool ledger_replayed_ = false;  // this batch's group commit found a ledger row on record
  size_t batch_spent_with_task_ = 0;  // of ledger_, the spent rows in their task's stage row
  std::map<std::string, TrustRecord> trust_;  // by credential
  uint64_t max_seq_ = 0;
  // When a batch nobody waits for is committed anyway (kUpdateLinger); unset: none lingers.
  std::optional<std::chrono::steady_clock::time_point> linger_until_;
  std::unordered_map<std::string, WorkerTotals> worker_written_;
};

}  // namespace

void RunWriter(PgStore::Shared& shared, std::unique_ptr<pqxx::connection> conn) {
  Writer(shared, std::move(conn)).Run();
}

}  // namespace rma::broker::pg
