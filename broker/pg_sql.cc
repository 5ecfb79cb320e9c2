// See pg_internal.h: the SQL of the PostgreSQL store, rows to records, sessions and migrations.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "broker/migrations.h"
#include "broker/pg_internal.h"
#include "broker/pg_values.h"

namespace rma::broker::pg {

using proto::TaskStatus;

// clang-format off
const std::vector<std::string> kTaskColumns = {
    "task_id", "service", "status", "priority", "payload", "content_type", "max_attempts",
    "timeout_ms", "idempotency_key", "min_tier", "min_gpu_memory_gb", "attempts", "failures",
    "requeues", "worker_id", "result", "result_content_type", "http_status", "error", "error_code",
    "created_at", "run_at", "started_at", "completed_at", "owner", "model", "trusted_only",
    "verified", "attempt_log"};
const std::vector<std::string> kMutableColumns = {
    "status", "attempts", "failures", "requeues", "worker_id", "result", "result_content_type",
    "http_status", "error", "error_code", "started_at", "completed_at", "verified", "attempt_log"};
// clang-format on

std::string InsertTasks(std::string_view rows) {
  static const std::string head = "INSERT INTO tasks (" + Join(kTaskColumns, "%") + ") ";
  static const std::string tail =
      " ON CONFLICT (task_id) DO UPDATE SET " + Join(kMutableColumns, "% = EXCLUDED.%");
  std::string sql;
  sql.reserve(head.size() + rows.size() + tail.size());
  sql.append(head).append(rows).append(tail);
  return sql;
}

// Timestamps come back as microseconds since the epoch (exact: extract() is numeric since PG 14).
std::string Micros(const std::string& column) {
  return "(extract(epoch from " + column + ") * 1000000)::bigint";
}

// The select list RecordFromRow reads; `payload` and `result` may be replaced by NULL when the
// caller does not need them.
std::string SelectColumns(bool payload, bool result) {
  return std::string("task_id, service, status, priority, ") +
         (payload ? "payload" : "NULL::bytea") +
         ", content_type, max_attempts, timeout_ms, idempotency_key, min_tier, min_gpu_memory_gb, "
         "attempts, failures, requeues, worker_id, " +
         (result ? "result" : "NULL::bytea") +
         ", result_content_type, http_status, error, error_code, " + Micros("created_at") + ", " +
         Micros("run_at") + ", " + Micros("started_at") + ", " + Micros("completed_at") +
         ", owner, model, trusted_only, verified, attempt_log::text";
}

std::string Join(const std::vector<std::string>& items, const std::string& format) {
  // `format` with every "%" replaced by the item, joined by ", ".
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += ", ";
    for (char c : format) {
      if (c == '%') {
        out += item;
      } else {
        out.push_back(c);
      }
    }
  }
  return out;
}

// A database error message on one line, for logs and replies (libpq's span several).
std::string OneLine(const std::string& message) {
  std::string out;
  for (char c : message) {
    if (c == '\n') {
      if (!out.empty() && out.back() != ' ') out += "; ";
      continue;
    }
    out.push_back(c);
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out.size() > 500 ? out.substr(0, 500) + "..." : out;
}

std::string Text(const pqxx::field& f) { return f.is_null() ? std::string() : f.c_str(); }
int64_t Int(const pqxx::field& f) { return f.is_null() ? 0 : f.as<int64_t>(); }
std::string ByteaOf(const pqxx::field& f) {
  return f.is_null() ? std::string() : pqxx::binarystring(f).str();
}
Time TimeOf(const pqxx::field& f) { return f.is_null() ? Time{} : FromUnixUs(f.as<int64_t>()); }

TaskRecord RecordFromRow(const pqxx::row& row) {
  TaskRecord r;
  r.id = TaskId(static_cast<uint64_t>(Int(row[0])));
  r.service = Text(row[1]);
  r.status = proto::ParseTaskStatus(Text(row[2])).value_or(TaskStatus::kQueued);
  r.priority = static_cast<uint32_t>(Int(row[3]));
  r.payload = ByteaOf(row[4]);
  r.content_type = Text(row[5]);
  r.max_attempts = static_cast<uint32_t>(Int(row[6]));
  r.timeout_ms = static_cast<uint32_t>(std::min<int64_t>(Int(row[7]), UINT32_MAX));
  r.idempotency_key = Text(row[8]);
  r.min_tier = static_cast<uint32_t>(Int(row[9]));
  r.min_gpu_memory_gb = row[10].is_null() ? 0 : row[10].as<double>();
  r.attempts = static_cast<uint32_t>(Int(row[11]));
  r.failures = static_cast<uint32_t>(Int(row[12]));
  r.requeues = static_cast<uint32_t>(Int(row[13]));
  r.worker_id = Text(row[14]);
  r.result = ByteaOf(row[15]);
  r.result_content_type = Text(row[16]);
  r.http_status = static_cast<uint32_t>(Int(row[17]));
  r.error = Text(row[18]);
  r.error_code = Text(row[19]);
  r.created_at = TimeOf(row[20]);
  r.run_at = TimeOf(row[21]);
  r.started_at = TimeOf(row[22]);
  r.completed_at = TimeOf(row[23]);
  r.owner = Text(row[24]);
  r.model = Text(row[25]);
  r.trusted_only = row[26].as<bool>(false);
  r.verified = row[27].as<bool>(false);
  if (row.size() > 28) r.attempt_log = ParseAttemptLog(Text(row[28]));
  return r;
}

// Whether a database error is worth retrying as it is (the connection, the server or a transient
// conflict) rather than a refusal of the data itself.
bool IsTransient(const pqxx::sql_error& e) {
  const std::string& state = e.sqlstate();
  if (state.size() < 2) return true;  // no SQLSTATE: the client library failed
  std::string cls = state.substr(0, 2);
  return cls == "08" || cls == "57" || cls == "53" || cls == "40" || cls == "58" || cls == "XX" ||
         state == "55P03";  // lock_not_available
}

// An eventfd used as a wake-up flag between threads.
void Signal(int fd) {
  uint64_t one = 1;
  while (write(fd, &one, sizeof one) < 0 && errno == EINTR) {
  }
}
void Drain(int fd) {
  uint64_t value;
  while (read(fd, &value, sizeof value) < 0 && errno == EINTR) {
  }
}

// `role` (writer-<instance>, reader, recovery) becomes the session's application_name.
std::unique_ptr<pqxx::connection> Connect(const std::string& url, const std::string& role) {
  return std::make_unique<pqxx::connection>(ConnectionString(url, "rma-broker-" + role));
}

// Takes the per-database broker lock on `conn` (held for the connection's life).
bool TakeBrokerLock(pqxx::connection& conn) {
  pqxx::nontransaction q(conn);
  return q.exec_params("SELECT pg_try_advisory_lock($1)", kBrokerLockKey)[0][0].as<bool>();
}

// A writer session this process lost (a network failure the server has not noticed yet) may
// still hold the broker lock, for as long as the server's keepalive takes. Sessions carrying this
// process's own application_name are such leftovers: end them so the lock comes free.
int EndStaleSessions(pqxx::connection& conn, const std::string& application_name) {
  pqxx::nontransaction q(conn);
  pqxx::result r = q.exec_params(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND "
      "pid <> pg_backend_pid()",
      application_name);
  return static_cast<int>(r.size());
}

Status Migrate(pqxx::connection& conn) {
  const std::vector<Migration>& migrations = EmbeddedMigrations();
  const int latest = migrations.empty() ? 0 : migrations.back().version;
  std::map<int, std::string> applied;
  {
    pqxx::nontransaction q(conn);
    if (q.exec("SELECT to_regclass('rma_migrations') IS NOT NULL")[0][0].as<bool>()) {
      for (const pqxx::row& row : q.exec("SELECT version, name FROM rma_migrations")) {
        applied[row[0].as<int>()] = Text(row[1]);
      }
    }
  }
  if (!applied.empty() && applied.rbegin()->first > latest) {
    return Status::FailedPrecondition("the database schema is at version " +
                                      std::to_string(applied.rbegin()->first) +
                                      ", newer than this broker's " + std::to_string(latest) +
                                      ": run a newer rma-broker (a schema is never downgraded)");
  }
  for (const Migration& m : migrations) {
    auto it = applied.find(m.version);
    if (it != applied.end()) {
      if (it->second != m.name) {
        return Status::FailedPrecondition("migration " + std::to_string(m.version) +
                                          " on record is '" + it->second + "', this broker's is '" +
                                          m.name + "': not an rma database of this lineage");
      }
      continue;
    }
    pqxx::work tx(conn);
    tx.exec(m.sql);
    tx.exec_params("INSERT INTO rma_migrations (version, name) VALUES ($1, $2)", m.version, m.name);
    tx.commit();
    spdlog::info("applied database migration {}", m.name);
  }
  return Status::Ok();
}

// The writer connection's session: its staging table and statements. Again after each reconnect.
void PrepareWriter(pqxx::connection& conn) {
  {
    pqxx::nontransaction q(conn);
    // A commit that hangs this long is treated as a lost connection; it is retried on a new one.
    q.exec("SET statement_timeout = '60s'");
    // The task columns and, for the spent rows that ride with their task (pg_ledger.cc), its
    // amount and compute time.
    q.exec("CREATE TEMP TABLE rma_stage ON COMMIT DELETE ROWS AS SELECT " +
           Join(kTaskColumns, "%") +
           ", NULL::numeric AS spent_amount, NULL::double precision AS spent_compute_s FROM tasks "
           "WITH NO DATA");
    q.exec(LedgerStageSql());
  }
  conn.prepare("rma_ledger_from_stage", LedgerFromStageSql());
  conn.prepare("rma_ledger_insert_staged", LedgerInsertStagedSql());
  conn.prepare("rma_ledger_credit_staged", LedgerCreditStagedSql());
  conn.prepare("rma_ledger_insert_spent_staged", LedgerInsertSpentStagedSql());
  conn.prepare("rma_ledger_credit_both_staged", LedgerCreditBothStagedSql());
  const std::string cols = Join(kTaskColumns, "%");
  conn.prepare("rma_insert_staged",
               InsertTasks("SELECT " + cols + " FROM rma_stage WHERE payload IS NOT NULL"));
  conn.prepare("rma_update_staged", "UPDATE tasks AS t SET " + Join(kMutableColumns, "% = s.%") +
                                        " FROM rma_stage AS s WHERE s.payload IS NULL AND "
                                        "t.task_id = s.task_id");
  conn.prepare("rma_clear_stage", "DELETE FROM rma_stage");
  conn.prepare("rma_delete_tasks", "DELETE FROM tasks WHERE task_id = ANY($1::bigint[])");
  // Worker totals arrive as increments (see Writer::WorkerRows).
  conn.prepare(
      "rma_upsert_worker",
      "INSERT INTO workers AS w (worker_id, name, tier, simulated, capabilities, services, "
      "status, first_seen, last_seen, tasks_done, tasks_failed, busy_seconds) "
      "VALUES ($1, $2, $3, $4, $5::jsonb, $6::text[], $7, $8::timestamptz, "
      "$9::timestamptz, $10, $11, $12) ON CONFLICT (worker_id) DO UPDATE SET "
      "name = EXCLUDED.name, tier = EXCLUDED.tier, simulated = EXCLUDED.simulated, "
      "capabilities = EXCLUDED.capabilities, services = EXCLUDED.services, "
      "status = EXCLUDED.status, first_seen = LEAST(w.first_seen, EXCLUDED.first_seen), "
      "last_seen = GREATEST(w.last_seen, EXCLUDED.last_seen), "
      "tasks_done = w.tasks_done + EXCLUDED.tasks_done, "
      "tasks_failed = w.tasks_failed + EXCLUDED.tasks_failed, "
      "busy_seconds = w.busy_seconds + EXCLUDED.busy_seconds");
  // Same merge rule as ServiceMinuteStats::Merge.
  auto weighted = [](const std::string& p, const std::string& n) {
    return "CASE WHEN s." + n + " + EXCLUDED." + n + " = 0 THEN NULL ELSE (coalesce(s." + p +
           ", 0) * s." + n + " + coalesce(EXCLUDED." + p + ", 0) * EXCLUDED." + n + ") / (s." + n +
           " + EXCLUDED." + n + ") END";
  };
  conn.prepare(
      "rma_upsert_stats",
      "INSERT INTO service_stats_minute AS s (minute, service, submitted, completed, failed, dead, "
      "queue_wait_samples, queue_wait_p50_ms, queue_wait_p99_ms, run_time_samples, "
      "run_time_p50_ms, run_time_p99_ms, queue_depth) VALUES ($1::timestamptz, $2, $3, $4, $5, $6, "
      "$7, $8, $9, $10, $11, $12, $13) ON CONFLICT (minute, service) DO UPDATE SET "
      "queue_depth = coalesce(EXCLUDED.queue_depth, s.queue_depth), "
      "submitted = s.submitted + EXCLUDED.submitted, completed = s.completed + EXCLUDED.completed, "
      "failed = s.failed + EXCLUDED.failed, dead = s.dead + EXCLUDED.dead, "
      "queue_wait_p50_ms = " +
          weighted("queue_wait_p50_ms", "queue_wait_samples") +
          ", queue_wait_p99_ms = GREATEST(s.queue_wait_p99_ms, EXCLUDED.queue_wait_p99_ms), "
          "run_time_p50_ms = " +
          weighted("run_time_p50_ms", "run_time_samples") +
          ", run_time_p99_ms = GREATEST(s.run_time_p99_ms, EXCLUDED.run_time_p99_ms), "
          "queue_wait_samples = s.queue_wait_samples + EXCLUDED.queue_wait_samples, "
          "run_time_samples = s.run_time_samples + EXCLUDED.run_time_samples");
}

// The task browser's listing (console.h): newest first, the filters that are set, the page after
// the cursor, one row more than the limit. The values are quoted literals: the set of filters
// varies, and listings are cheap to plan (the reader plans each statement anyway).
std::string ListSql(pqxx::transaction_base& tx, const ListFilter& f) {
  std::string sql = "SELECT " + SelectColumns(false, false) + " FROM tasks WHERE true";
  auto equals = [&](const char* column, const std::string& value) {
    sql += std::string(" AND ") + column + " = " + tx.quote(CleanText(value));
  };
  if (f.owner) equals("owner", *f.owner);
  if (!f.service.empty()) equals("service", f.service);
  if (f.status) equals("status", std::string(proto::TaskStatusName(*f.status)));
  if (!f.worker_id.empty()) equals("worker_id", f.worker_id);
  if (!f.error_code.empty()) equals("error_code", f.error_code);
  auto at = [&](int64_t us) { return tx.quote(PgTimestamp(FromUnixUs(us))) + "::timestamptz"; };
  if (f.since_us != 0) sql += " AND created_at >= " + at(f.since_us);
  if (f.until_us != 0) sql += " AND created_at < " + at(f.until_us);
  if (f.after) {
    sql += " AND (created_at, task_id) < (" + at(f.after->created_us) + ", " +
           std::to_string(static_cast<int64_t>(f.after->task_id)) + "::bigint)";
  }
  sql += " ORDER BY created_at DESC, task_id DESC LIMIT " + std::to_string(f.limit + 1);
  return sql;
}

void PrepareReader(pqxx::connection& conn) {
  {
    pqxx::nontransaction q(conn);
    q.exec("SET statement_timeout = '30s'");
    // A generic plan for "status = $1" cannot use the partial indexes; listings are cheap to plan.
    q.exec("SET plan_cache_mode = force_custom_plan");
  }
  conn.prepare("rma_get_task",
               "SELECT " + SelectColumns(false, true) + " FROM tasks WHERE task_id = $1");
  conn.prepare("rma_get_task_detail",
               "SELECT " + SelectColumns(true, true) + " FROM tasks WHERE task_id = $1");
  conn.prepare("rma_find_key",
               "SELECT task_id, status FROM tasks WHERE owner = $1 AND idempotency_key = $2");
  conn.prepare("rma_lock_task",
               "SELECT " + SelectColumns(true, true) + " FROM tasks WHERE task_id = $1 FOR UPDATE");
  conn.prepare("rma_requeue_dead",
               "UPDATE tasks SET status = 'queued', failures = 0, requeues = 0, error = NULL, "
               "error_code = NULL, completed_at = NULL WHERE task_id = $1");
  conn.prepare("rma_discard_dead", "DELETE FROM tasks WHERE task_id = $1");
  conn.prepare("rma_stats_today",
               "SELECT service, sum(submitted), sum(completed), sum(failed), sum(dead) FROM "
               "service_stats_minute WHERE minute >= $1::timestamptz GROUP BY service");
  conn.prepare("rma_stats_history",
               "SELECT " + Micros("minute") +
                   ", service, submitted, completed, failed, dead, queue_wait_samples, "
                   "queue_wait_p50_ms, queue_wait_p99_ms, run_time_samples, run_time_p50_ms, "
                   "run_time_p99_ms FROM service_stats_minute WHERE minute >= $1::timestamptz");
  std::string finished;  // the terminal states, from the protocol's one list
  for (std::string_view name : proto::TaskStatusNames()) {
    if (proto::IsTerminal(*proto::ParseTaskStatus(name))) {
      finished += (finished.empty() ? "'" : ", '") + std::string(name) + "'";
    }
  }
  conn.prepare("rma_retention",
               "DELETE FROM tasks WHERE task_id IN (SELECT task_id FROM tasks WHERE completed_at "
               "< $1::timestamptz AND status IN (" +
                   finished + ") ORDER BY completed_at LIMIT $2)");
  conn.prepare("rma_stats_retention",
               "DELETE FROM service_stats_minute WHERE ctid IN (SELECT ctid FROM "
               "service_stats_minute WHERE minute < $1::timestamptz LIMIT $2)");
}

}  // namespace rma::broker::pg
