// See pg_store.h. Every libpqxx call of the broker is in this file; pqxx exceptions are caught here
// and become a Status, an error reply or a reconnect, never anything the scheduler sees.
#include "broker/pg_store.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "broker/admin.h"
#include "broker/migrations.h"
#include "broker/pg_values.h"
#include "common/thread_annotations.h"
#include "schemas/codec.h"

namespace rma::broker {

using proto::Command;
using proto::TaskStatus;

namespace {

// pg_advisory_lock key held by the broker that owns a database ("rmabrk" in ASCII).
constexpr int64_t kBrokerLockKey = 0x726d6162726b;
// The history window of a stats answer (the in-memory history keeps as many minutes).
constexpr int64_t kHistoryMinutes = 60;

// The tasks columns, in the order of the COPY rows and of SelectColumns().
const std::vector<std::string> kTaskColumns = {"task_id",
                                               "service",
                                               "status",
                                               "priority",
                                               "payload",
                                               "content_type",
                                               "max_attempts",
                                               "timeout_ms",
                                               "idempotency_key",
                                               "min_tier",
                                               "min_gpu_memory_gb",
                                               "attempts",
                                               "failures",
                                               "requeues",
                                               "worker_id",
                                               "result",
                                               "result_content_type",
                                               "http_status",
                                               "error",
                                               "error_code",
                                               "created_at",
                                               "run_at",
                                               "started_at",
                                               "completed_at"};
// Columns a state change may touch (payload, service, priority and the like never change).
const std::vector<std::string> kMutableColumns = {"status",
                                                  "attempts",
                                                  "failures",
                                                  "requeues",
                                                  "worker_id",
                                                  "result",
                                                  "result_content_type",
                                                  "http_status",
                                                  "error",
                                                  "error_code",
                                                  "started_at",
                                                  "completed_at"};

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
         Micros("run_at") + ", " + Micros("started_at") + ", " + Micros("completed_at");
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
std::string Bytes(const pqxx::field& f) {
  return f.is_null() ? std::string() : pqxx::binarystring(f).str();
}
Time TimeOf(const pqxx::field& f) { return f.is_null() ? Time{} : FromUnixUs(f.as<int64_t>()); }

TaskRecord RecordFromRow(const pqxx::row& row) {
  TaskRecord r;
  r.id = TaskId(static_cast<uint64_t>(Int(row[0])));
  r.service = Text(row[1]);
  r.status = proto::ParseTaskStatus(Text(row[2])).value_or(TaskStatus::kQueued);
  r.priority = static_cast<uint32_t>(Int(row[3]));
  r.payload = Bytes(row[4]);
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
  r.result = Bytes(row[15]);
  r.result_content_type = Text(row[16]);
  r.http_status = static_cast<uint32_t>(Int(row[17]));
  r.error = Text(row[18]);
  r.error_code = Text(row[19]);
  r.created_at = TimeOf(row[20]);
  r.run_at = TimeOf(row[21]);
  r.started_at = TimeOf(row[22]);
  r.completed_at = TimeOf(row[23]);
  return r;
}

proto::TaskView ViewOf(const TaskRecord& r, bool with_result) {
  proto::TaskView v;
  v.task_id = r.id;
  v.service = r.service;
  v.status = r.status;
  v.priority = r.priority;
  v.attempts = r.attempts;
  v.max_attempts = r.max_attempts;
  v.worker_id = r.worker_id;
  if (with_result) v.result = r.result;
  v.content_type = r.result_content_type;
  v.http_status = r.http_status;
  v.error = r.error;
  v.error_code = r.error_code;
  v.idempotency_key = r.idempotency_key;
  v.created_at_ms = ToUnixMs(r.created_at);
  v.started_at_ms = r.started_at.time_since_epoch().count() > 0 ? ToUnixMs(r.started_at) : 0;
  v.completed_at_ms = r.completed_at.time_since_epoch().count() > 0 ? ToUnixMs(r.completed_at) : 0;
  return v;
}

std::optional<std::string> OptText(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return CleanText(s);
}
std::optional<std::string> OptTime(Time t) {
  if (t.time_since_epoch().count() <= 0) return std::nullopt;
  return PgTimestamp(t);
}
int64_t Clamp32(uint64_t v) { return static_cast<int64_t>(std::min<uint64_t>(v, INT32_MAX)); }

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
      OptTime(r.completed_at));
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
    q.exec("CREATE TEMP TABLE rma_stage ON COMMIT DELETE ROWS AS SELECT " +
           Join(kTaskColumns, "%") + " FROM tasks WITH NO DATA");
  }
  const std::string cols = Join(kTaskColumns, "%");
  conn.prepare(
      "rma_insert_staged",
      "INSERT INTO tasks (" + cols + ") SELECT " + cols +
          " FROM rma_stage WHERE payload IS NOT NULL ON CONFLICT (task_id) DO UPDATE SET " +
          Join(kMutableColumns, "% = EXCLUDED.%"));
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
      "run_time_p50_ms, run_time_p99_ms) VALUES ($1::timestamptz, $2, $3, $4, $5, $6, $7, $8, $9, "
      "$10, $11, $12) ON CONFLICT (minute, service) DO UPDATE SET "
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

void PrepareReader(pqxx::connection& conn) {
  {
    pqxx::nontransaction q(conn);
    q.exec("SET statement_timeout = '30s'");
    // A generic plan for "status = $1" cannot use the partial indexes; listings are cheap to plan.
    q.exec("SET plan_cache_mode = force_custom_plan");
  }
  conn.prepare("rma_get_task",
               "SELECT " + SelectColumns(false, true) + " FROM tasks WHERE task_id = $1");
  const std::string list = "SELECT " + SelectColumns(false, false) + " FROM tasks ";
  conn.prepare("rma_list_all", list + "ORDER BY task_id DESC LIMIT $1");
  conn.prepare("rma_list_service", list + "WHERE service = $1 ORDER BY task_id DESC LIMIT $2");
  conn.prepare("rma_list_status", list + "WHERE status = $1 ORDER BY task_id DESC LIMIT $2");
  conn.prepare("rma_list_both",
               list + "WHERE service = $1 AND status = $2 ORDER BY task_id DESC LIMIT $3");
  conn.prepare("rma_find_key", "SELECT task_id, status FROM tasks WHERE idempotency_key = $1");
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
  conn.prepare("rma_retention",
               "DELETE FROM tasks WHERE task_id IN (SELECT task_id FROM tasks WHERE completed_at "
               "< $1::timestamptz AND status IN ('completed', 'dead', 'cancelled', 'expired') "
               "ORDER BY completed_at LIMIT $2)");
  conn.prepare("rma_stats_retention",
               "DELETE FROM service_stats_minute WHERE ctid IN (SELECT ctid FROM "
               "service_stats_minute WHERE minute < $1::timestamptz LIMIT $2)");
}

std::string ErrorBody(uint64_t ref, const Status& s) {
  proto::Error e;
  e.ref = ref;
  e.code = std::string(StatusCodeName(s.code()));
  e.message = s.message();
  return proto::Encode(e);
}

std::string AdminBody(uint64_t ref, const nlohmann::json& doc) {
  proto::AdminReply reply;
  reply.ref = ref;
  std::vector<uint8_t> packed = nlohmann::json::to_msgpack(doc);
  reply.data.assign(packed.begin(), packed.end());
  return proto::Encode(reply);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Shared state

struct PgStore::Pending {
  std::vector<std::pair<uint64_t, TaskWrite>> tasks;  // (sequence number, write)
  std::vector<WorkerRecord> workers;
  std::vector<ServiceMinuteStats> stats;
  uint64_t max_seq = 0;
  bool empty() const { return tasks.empty() && workers.empty() && stats.empty(); }
};

struct PgStore::ReadRequest {
  enum class Kind { kGet, kList, kKey, kDeadTask, kStats };
  Kind kind = Kind::kGet;
  uint64_t after_seq = 0;  // served once every write up to this one is durable
  std::string client;
  uint64_t ref = 0;
  TaskId id;
  bool retry = false;
  proto::List list;
  proto::Submit submit;
  nlohmann::json live;
  std::vector<ServiceMinuteStats> pending;
  Time now{};
};

struct PgStore::Shared {
  PgStoreOptions options;
  const Clock* clock = nullptr;
  std::string writer_role;  // writer-<instance id>, unique to this process
  int writer_wake = -1;     // eventfd: the loop flushed writes, or stop
  int loop_wake = -1;       // eventfd: durable_seq or availability changed, or replies are waiting

  std::mutex mu;
  std::condition_variable reader_cv;  // reads queued, durable_seq or availability changed, stop
  std::vector<Pending> inbox RMA_GUARDED_BY(mu);
  std::deque<ReadRequest> reads RMA_GUARDED_BY(mu);
  std::vector<StoreReply> outbox RMA_GUARDED_BY(mu);
  // Published together with the replies so the loop never releases an ACCEPTED before it has seen
  // that its task was not recorded.
  uint64_t durable_seq RMA_GUARDED_BY(mu) = 0;
  bool available RMA_GUARDED_BY(mu) = true;
  bool stopping RMA_GUARDED_BY(mu) = false;

  std::atomic<uint64_t> commits{0}, task_rows{0}, writes{0}, failed_commits{0}, reconnects{0},
      dropped_rows{0}, retention_deleted{0}, commit_us{0};

  std::thread writer;
  std::thread reader;

  void Reply(StoreReply reply) {
    {
      std::lock_guard<std::mutex> lock(mu);
      outbox.push_back(std::move(reply));
    }
    Signal(loop_wake);
  }
};

namespace {

using Shared = PgStore::Shared;
using ReadRequest = PgStore::ReadRequest;

// ---------------------------------------------------------------------------------------------------
// The writer thread: group commits on its own connection.

class Writer {
 public:
  Writer(Shared& shared, std::unique_ptr<pqxx::connection> conn)
      : s_(shared), conn_(std::move(conn)), backoff_(shared.options.reconnect_min) {}

  void Run() {
    std::optional<std::chrono::steady_clock::time_point> drain_deadline;
    for (;;) {
      bool stopping = Collect();
      if (stopping && !drain_deadline) {
        drain_deadline = std::chrono::steady_clock::now() + s_.options.drain_wait;
      }
      if (!conn_ && std::chrono::steady_clock::now() >= next_connect_) Reconnect();
      if (conn_ && !BatchEmpty()) {
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
  enum class Outcome { kOk, kTransient, kRefused };

  // Takes everything the loop flushed into the current batch, coalescing per task. Returns whether
  // the store is stopping.
  bool Collect() {
    std::vector<PgStore::Pending> taken;
    bool stopping;
    {
      std::lock_guard<std::mutex> lock(s_.mu);
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
            std::string payload = std::move(row.record.payload);
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
  }

  bool BatchEmpty() const { return rows_.empty() && workers_.empty() && stats_.empty(); }

  void ClearBatch() {
    rows_.clear();
    index_.clear();
    workers_.clear();
    stats_.clear();
  }

  void CommitBatch() {
    std::vector<std::pair<TaskId, std::string>> unrecorded;
    std::map<std::string, WorkerTotals> written;
    auto started = std::chrono::steady_clock::now();
    Outcome outcome = Commit(/*careful=*/false, &unrecorded, &written);
    s_.commit_us += static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                              std::chrono::steady_clock::now() - started)
                                              .count());
    if (outcome == Outcome::kRefused) {
      ++s_.failed_commits;
      spdlog::error(
          "store: the database refused a batch of {} task row(s): {}; retrying row by row",
          rows_.size(), last_error_);
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
    for (auto& [id, totals] : written) worker_written_[id] = totals;
    {
      std::lock_guard<std::mutex> lock(s_.mu);
      for (auto& [id, why] : unrecorded) {
        StoreReply r;
        r.unrecorded = id;
        s_.outbox.push_back(std::move(r));
      }
      s_.durable_seq = std::max(s_.durable_seq, max_seq_);
    }
    s_.reader_cv.notify_all();
    Signal(s_.loop_wake);
    ClearBatch();
  }

  // Writes the batch in one transaction. `careful`: every row in its own subtransaction, and rows
  // the database refuses are dropped (logged, counted, reported in `unrecorded` for inserts) so the
  // rest goes through.
  Outcome Commit(bool careful, std::vector<std::pair<TaskId, std::string>>* unrecorded,
                 std::map<std::string, WorkerTotals>* written) {
    try {
      pqxx::work tx(*conn_);
      if (!careful) {
        WriteTaskRows(tx, rows_, false);
      } else {
        for (Row& row : rows_) CarefulTaskRow(tx, row, unrecorded);
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
      return IsTransient(e) || careful ? Outcome::kTransient : Outcome::kRefused;
    } catch (const std::exception& e) {
      last_error_ = OneLine(e.what());
      return Outcome::kTransient;
    }
  }

  void WriteTaskRows(pqxx::transaction_base& tx, const std::vector<Row>& rows, bool clear_stage) {
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
      pqxx::stream_to copy(tx, "rma_stage", kTaskColumns);
      for (const Row& row : rows) {
        if (row.kind == WriteKind::kDelete) continue;
        copy << StageRow(row.record, row.kind == WriteKind::kInsert);
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
        opt(st.run_time_samples, st.run_time_p50_ms), opt(st.run_time_samples, st.run_time_p99_ms));
  }

  // The connection is gone or unusable: the store is unavailable until Reconnect() succeeds.
  void Lost(const std::string& why) {
    conn_.reset();
    bool was_available;
    {
      std::lock_guard<std::mutex> lock(s_.mu);
      was_available = s_.available;
      s_.available = false;
    }
    if (was_available) {
      spdlog::error("store: lost the database ({}); refusing new tasks until it is back", why);
      s_.reader_cv.notify_all();
      Signal(s_.loop_wake);
    }
    next_connect_ = std::chrono::steady_clock::now() + backoff_;
    backoff_ = std::min(backoff_ * 2, s_.options.reconnect_max);
  }

  void Reconnect() {
    try {
      auto conn = Connect(s_.options.url, s_.writer_role);
      if (!TakeBrokerLock(*conn)) {
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
      std::lock_guard<std::mutex> lock(s_.mu);
      s_.available = true;
    }
    spdlog::info("store: database connection restored; {} pending task row(s) to commit",
                 rows_.size());
    s_.reader_cv.notify_all();
    Signal(s_.loop_wake);
  }

  // Sleeps until the loop flushes, the reconnect time comes, or (idle and connected) the server
  // closes the connection, which is noticed at once rather than at the next commit.
  void Wait(std::optional<std::chrono::steady_clock::time_point> deadline) {
    pollfd fds[2] = {{s_.writer_wake, POLLIN, 0}, {-1, POLLIN, 0}};
    int timeout_ms = -1;
    if (conn_) {
      fds[1].fd = conn_->sock();
    } else {
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, std::chrono::duration_cast<std::chrono::milliseconds>(next_connect_ -
                                                                   std::chrono::steady_clock::now())
                 .count()));
    }
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      *deadline - std::chrono::steady_clock::now())
                      .count();
      int d = static_cast<int>(std::max<int64_t>(0, left));
      timeout_ms = timeout_ms < 0 ? d : std::min(timeout_ms, d);
    }
    int n = poll(fds, fds[1].fd >= 0 ? 2 : 1, timeout_ms);
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

  Shared& s_;
  std::unique_ptr<pqxx::connection> conn_;
  std::chrono::steady_clock::time_point next_connect_{};
  Duration backoff_;
  std::string last_error_;

  // The batch: pending until committed, kept across failures (retried, never lost).
  std::vector<Row> rows_;
  std::unordered_map<uint64_t, size_t> index_;  // task id -> rows_ index
  std::map<std::string, WorkerRecord> workers_;
  std::map<std::pair<int64_t, std::string>, ServiceMinuteStats> stats_;
  uint64_t max_seq_ = 0;
  std::unordered_map<std::string, WorkerTotals> worker_written_;
};

// ---------------------------------------------------------------------------------------------------
// The reader thread: everything that reads the record, and retention.

class Reader {
 public:
  explicit Reader(Shared& shared) : s_(shared) {}

  void Run() {
    auto next_retention = std::chrono::steady_clock::now() +
                          std::min<std::chrono::steady_clock::duration>(
                              std::chrono::seconds(5), s_.options.retention_interval);
    const bool retention =
        s_.options.retention.count() > 0 || s_.options.stats_retention.count() > 0;
    for (;;) {
      std::optional<ReadRequest> request;
      bool unavailable = false;
      {
        std::unique_lock<std::mutex> lock(s_.mu);
        for (;;) {
          if (s_.stopping) return;
          if (!s_.reads.empty()) {
            ReadRequest& front = s_.reads.front();
            if (front.after_seq <= s_.durable_seq || !s_.available) {
              unavailable = front.after_seq > s_.durable_seq;
              request = std::move(front);
              s_.reads.pop_front();
              break;
            }
            s_.reader_cv.wait(lock);  // for the writes it must see
            continue;
          }
          if (retention && std::chrono::steady_clock::now() >= next_retention) break;
          if (retention) {
            s_.reader_cv.wait_until(lock, next_retention);
          } else {
            s_.reader_cv.wait(lock);
          }
        }
      }
      if (request) {
        Serve(std::move(*request), unavailable);
        continue;
      }
      // Retention: one small batch at a time, so reads never wait long behind it.
      bool more = RetentionBatch();
      next_retention = std::chrono::steady_clock::now() +
                       (more ? std::chrono::milliseconds(0)
                             : std::chrono::duration_cast<std::chrono::milliseconds>(
                                   s_.options.retention_interval));
    }
  }

 private:
  pqxx::connection* Connection() {
    if (conn_) return conn_.get();
    if (std::chrono::steady_clock::now() < next_connect_) return nullptr;
    try {
      auto conn = Connect(s_.options.url, "reader");
      PrepareReader(*conn);
      conn_ = std::move(conn);
    } catch (const std::exception& e) {
      spdlog::warn("store: reader cannot reach the database: {}", OneLine(e.what()));
      next_connect_ = std::chrono::steady_clock::now() + s_.options.reconnect_min;
    }
    return conn_.get();
  }

  void Serve(ReadRequest req, bool unavailable) {
    Status why = Status::Unavailable("the task store is unavailable (database unreachable)");
    pqxx::connection* conn = unavailable ? nullptr : Connection();
    if (conn != nullptr) {
      try {
        Execute(*conn, req);
        return;
      } catch (const pqxx::broken_connection& e) {
        conn_.reset();
        why = Status::Unavailable("the task store lost its database: " + OneLine(e.what()));
      } catch (const pqxx::sql_error& e) {
        if (IsTransient(e)) conn_.reset();
        why = IsTransient(e) ? Status::Unavailable("the task store: " + OneLine(e.what()))
                             : Status::Internal("the task store: " + OneLine(e.what()));
      } catch (const std::exception& e) {
        conn_.reset();
        why = Status::Internal("the task store: " + OneLine(e.what()));
      }
    }
    Fail(std::move(req), why);
  }

  // Answers a request that cannot be served from the record.
  void Fail(ReadRequest req, const Status& why) {
    StoreReply r;
    r.client = req.client;
    if (req.kind == ReadRequest::Kind::kStats) {
      // Statistics still have an answer: this process's own.
      MarkStatsFromMemory(why.message(), &req.live);
      r.command = Command::kAdminReply;
      r.body = AdminBody(req.ref, req.live);
    } else if (req.kind == ReadRequest::Kind::kKey) {
      r.command = Command::kError;
      r.body = ErrorBody(req.submit.ref,
                         Status::Unavailable(why.message() + "; the task was not accepted"));
    } else {
      r.command = Command::kError;
      r.body = ErrorBody(req.kind == ReadRequest::Kind::kList ? req.list.ref : req.ref, why);
    }
    s_.Reply(std::move(r));
  }

  void Execute(pqxx::connection& conn, ReadRequest& req) {
    StoreReply r;
    r.client = req.client;
    switch (req.kind) {
      case ReadRequest::Kind::kGet: {
        pqxx::read_transaction tx(conn);
        pqxx::result rows = tx.exec_prepared("rma_get_task", static_cast<int64_t>(req.id.value()));
        if (rows.empty()) {
          r.command = Command::kError;
          r.body = ErrorBody(req.ref, Status::NotFound("task " + ToString(req.id) + " not found"));
        } else {
          proto::TaskInfo info;
          info.ref = req.ref;
          info.task = ViewOf(RecordFromRow(rows[0]), /*with_result=*/true);
          r.command = Command::kTaskInfo;
          r.body = proto::Encode(info);
        }
        break;
      }
      case ReadRequest::Kind::kList: {
        const proto::List& l = req.list;
        if (!l.status.empty() && !proto::ParseTaskStatus(l.status)) {
          r.command = Command::kError;
          r.body = ErrorBody(l.ref, Status::InvalidArgument("unknown status '" + l.status + "'"));
          break;
        }
        int64_t limit = std::clamp<int64_t>(l.limit == 0 ? 100 : l.limit, 1, 1000);
        pqxx::read_transaction tx(conn);
        pqxx::result rows;
        if (!l.service.empty() && !l.status.empty()) {
          rows = tx.exec_prepared("rma_list_both", CleanText(l.service), l.status, limit);
        } else if (!l.service.empty()) {
          rows = tx.exec_prepared("rma_list_service", CleanText(l.service), limit);
        } else if (!l.status.empty()) {
          rows = tx.exec_prepared("rma_list_status", l.status, limit);
        } else {
          rows = tx.exec_prepared("rma_list_all", limit);
        }
        proto::TaskList list;
        list.ref = l.ref;
        for (const pqxx::row& row : rows) {
          list.tasks.push_back(ViewOf(RecordFromRow(row), /*with_result=*/false));
        }
        r.command = Command::kTaskList;
        r.body = proto::Encode(list);
        break;
      }
      case ReadRequest::Kind::kKey: {
        pqxx::read_transaction tx(conn);
        pqxx::result rows = tx.exec_prepared("rma_find_key", CleanText(req.submit.idempotency_key));
        if (rows.empty()) {
          r.resubmit = std::move(req.submit);  // a new key: the scheduler takes the task
        } else {
          proto::Accepted a;
          a.ref = req.submit.ref;
          a.task_id = TaskId(static_cast<uint64_t>(Int(rows[0][0])));
          a.status = proto::ParseTaskStatus(Text(rows[0][1])).value_or(TaskStatus::kQueued);
          a.duplicate = true;
          r.command = Command::kAccepted;
          r.body = proto::Encode(a);
        }
        break;
      }
      case ReadRequest::Kind::kDeadTask:
        DeadTask(conn, req, &r);
        break;
      case ReadRequest::Kind::kStats:
        StatsAnswer(conn, req, &r);
        break;
    }
    s_.Reply(std::move(r));
  }

  void DeadTask(pqxx::connection& conn, ReadRequest& req, StoreReply* r) {
    const std::string action = req.retry ? "retry" : "discard";
    pqxx::work tx(conn);
    pqxx::result rows = tx.exec_prepared("rma_lock_task", static_cast<int64_t>(req.id.value()));
    Status refused;
    if (rows.empty()) {
      refused = Status::NotFound("task " + ToString(req.id) + " not found");
    } else {
      TaskRecord record = RecordFromRow(rows[0]);
      if (record.status != TaskStatus::kDead) {
        refused = Status::FailedPrecondition("task " + ToString(req.id) + " is " +
                                             std::string(proto::TaskStatusName(record.status)) +
                                             ", not dead");
      } else if (req.retry) {
        tx.exec_prepared("rma_requeue_dead", static_cast<int64_t>(req.id.value()));
        // The same reset as Scheduler::RetryDead; the scheduler queues it once this is committed.
        record.status = TaskStatus::kQueued;
        record.failures = 0;
        record.requeues = 0;
        record.error.clear();
        record.error_code.clear();
        record.completed_at = Time{};
        r->restore.push_back(std::move(record));
      } else {
        tx.exec_prepared("rma_discard_dead", static_cast<int64_t>(req.id.value()));
      }
    }
    if (!refused.ok()) {
      r->restore.clear();
      r->command = Command::kError;
      r->body = ErrorBody(req.ref, refused);
      return;
    }
    tx.commit();
    spdlog::info("admin {} of dead task {} (on record only)", action, ToString(req.id));
    r->command = Command::kAdminReply;
    r->body = AdminBody(req.ref, {{"task_id", ToString(req.id)}, {"action", action}, {"ok", true}});
  }

  void StatsAnswer(pqxx::connection& conn, ReadRequest& req, StoreReply* r) {
    StoredStats stored;
    stored.day_start = StartOfUtcDay(req.now);
    const int64_t history_from = ToUnixMs(req.now) / 60000 * 60000 - (kHistoryMinutes - 1) * 60000;
    std::map<std::string, ServiceMinuteStats> today;
    std::map<int64_t, ServiceMinuteStats> history;
    {
      pqxx::read_transaction tx(conn);
      for (const pqxx::row& row :
           tx.exec_prepared("rma_stats_today", PgTimestamp(stored.day_start))) {
        ServiceMinuteStats& t = today[Text(row[0])];
        t.service = Text(row[0]);
        t.submitted = static_cast<uint64_t>(Int(row[1]));
        t.completed = static_cast<uint64_t>(Int(row[2]));
        t.failed = static_cast<uint64_t>(Int(row[3]));
        t.dead = static_cast<uint64_t>(Int(row[4]));
      }
      for (const pqxx::row& row :
           tx.exec_prepared("rma_stats_history", PgTimestamp(FromUnixMs(history_from)))) {
        ServiceMinuteStats m;
        m.minute = FromUnixUs(Int(row[0]));
        m.service = Text(row[1]);
        m.submitted = static_cast<uint64_t>(Int(row[2]));
        m.completed = static_cast<uint64_t>(Int(row[3]));
        m.failed = static_cast<uint64_t>(Int(row[4]));
        m.dead = static_cast<uint64_t>(Int(row[5]));
        m.queue_wait_samples = static_cast<uint64_t>(Int(row[6]));
        m.queue_wait_p50_ms = row[7].is_null() ? 0 : row[7].as<double>();
        m.queue_wait_p99_ms = row[8].is_null() ? 0 : row[8].as<double>();
        m.run_time_samples = static_cast<uint64_t>(Int(row[9]));
        m.run_time_p50_ms = row[10].is_null() ? 0 : row[10].as<double>();
        m.run_time_p99_ms = row[11].is_null() ? 0 : row[11].as<double>();
        AddToHistory(&history, m);
      }
    }
    // The minute in progress is still in the broker's memory.
    for (const ServiceMinuteStats& p : req.pending) {
      if (p.minute >= stored.day_start) {
        ServiceMinuteStats& t = today[p.service];
        t.service = p.service;
        t.Merge(p);
      }
      if (ToUnixMs(p.minute) >= history_from) AddToHistory(&history, p);
    }
    for (auto& [name, t] : today) stored.today.push_back(t);
    for (auto& [minute, m] : history) stored.history.push_back(m);
    ApplyStoredStats(stored, &req.live);
    r->command = Command::kAdminReply;
    r->body = AdminBody(req.ref, req.live);
  }

  static void AddToHistory(std::map<int64_t, ServiceMinuteStats>* history,
                           const ServiceMinuteStats& m) {
    auto [it, fresh] = history->try_emplace(ToUnixMs(m.minute));
    if (fresh) it->second.minute = m.minute;
    it->second.Merge(m);
  }

  // Deletes one batch of expired rows; returns whether there may be more.
  bool RetentionBatch() {
    pqxx::connection* conn = Connection();
    if (conn == nullptr) return false;
    const Time now = s_.clock->Now();
    const auto batch = static_cast<int64_t>(s_.options.retention_batch);
    try {
      uint64_t deleted = 0;
      uint64_t stats_deleted = 0;
      if (s_.options.retention.count() > 0) {
        pqxx::work tx(*conn);
        deleted = tx.exec_prepared("rma_retention", PgTimestamp(now - s_.options.retention), batch)
                      .affected_rows();
        tx.commit();
      }
      if (s_.options.stats_retention.count() > 0) {
        pqxx::work tx(*conn);
        stats_deleted = tx.exec_prepared("rma_stats_retention",
                                         PgTimestamp(now - s_.options.stats_retention), batch)
                            .affected_rows();
        tx.commit();
      }
      s_.retention_deleted += deleted;
      if (deleted > 0) spdlog::debug("retention: deleted {} finished task(s)", deleted);
      return deleted == static_cast<uint64_t>(batch) ||
             stats_deleted == static_cast<uint64_t>(batch);
    } catch (const std::exception& e) {
      spdlog::warn("retention: {}", OneLine(e.what()));
      conn_.reset();
      return false;
    }
  }

  Shared& s_;
  std::unique_ptr<pqxx::connection> conn_;
  std::chrono::steady_clock::time_point next_connect_{};
};

}  // namespace

// ---------------------------------------------------------------------------------------------------
// PgStore: the broker loop's side.

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
  s->writer = std::thread([s, c = std::move(conn)]() mutable { Writer(*s, std::move(c)).Run(); });
  s->reader = std::thread([s] { Reader(*s).Run(); });
  return std::unique_ptr<PgStore>(new PgStore(std::move(shared)));
}

PgStore::PgStore(std::unique_ptr<Shared> shared)
    : shared_(std::move(shared)), pending_(std::make_unique<Pending>()) {}

PgStore::~PgStore() {
  Flush();
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->stopping = true;
  }
  Signal(shared_->writer_wake);
  shared_->reader_cv.notify_all();
  shared_->writer.join();
  shared_->reader.join();
  close(shared_->writer_wake);
  close(shared_->loop_wake);
  PgStoreCounters c = counters();
  spdlog::info(
      "store: {} commit(s) of {} task row(s) for {} write(s), {:.2f} ms per commit; {} failed, {} "
      "reconnect(s)",
      c.commits, c.task_rows, c.writes,
      c.commits == 0 ? 0.0
                     : static_cast<double>(c.commit_us) / 1000.0 / static_cast<double>(c.commits),
      c.failed_commits, c.reconnects);
}

Result<RecoveredState> PgStore::Recover() {
  RecoveredState state;
  try {
    auto conn = Connect(shared_->options.url, "recovery");
    pqxx::work tx(*conn);
    state.max_task_id = static_cast<uint64_t>(Int(tx.exec("SELECT max(task_id) FROM tasks")[0][0]));
    // In pieces through a cursor, so a long queue never sits in memory twice.
    tx.exec("DECLARE rma_recover NO SCROLL CURSOR FOR SELECT " + SelectColumns(true, true) +
            " FROM tasks WHERE status IN ('queued', 'running', 'failed') "
            "ORDER BY priority DESC, task_id");
    for (;;) {
      pqxx::result rows = tx.exec("FETCH 5000 FROM rma_recover");
      if (rows.empty()) break;
      for (const pqxx::row& row : rows) state.tasks.push_back(RecordFromRow(row));
    }
    tx.commit();
  } catch (const std::exception& e) {
    return Status::Unavailable("reading unfinished tasks: " + OneLine(e.what()));
  }
  spdlog::info("store: {} unfinished task(s) on record; largest task id {}", state.tasks.size(),
               state.max_task_id);
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

void PgStore::Flush() {
  if (pending_->empty()) return;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->inbox.push_back(std::move(*pending_));
  }
  *pending_ = Pending{};
  Signal(shared_->writer_wake);
}

void PgStore::Enqueue(ReadRequest request) {
  request.after_seq = seq_;
  {
    std::lock_guard<std::mutex> lock(shared_->mu);
    shared_->reads.push_back(std::move(request));
  }
  shared_->reader_cv.notify_all();
}

void PgStore::LookupTask(const std::string& client, uint64_t ref, TaskId id) {
  ReadRequest r;
  r.kind = ReadRequest::Kind::kGet;
  r.client = client;
  r.ref = ref;
  r.id = id;
  Enqueue(std::move(r));
}

void PgStore::ListTasks(const std::string& client, const proto::List& query) {
  ReadRequest r;
  r.kind = ReadRequest::Kind::kList;
  r.client = client;
  r.list = query;
  Enqueue(std::move(r));
}

void PgStore::SubmitWithKey(const std::string& client, proto::Submit submit) {
  ReadRequest r;
  r.kind = ReadRequest::Kind::kKey;
  r.client = client;
  r.submit = std::move(submit);
  Enqueue(std::move(r));
}

void PgStore::AdminDeadTask(const std::string& client, uint64_t ref, TaskId id, bool retry) {
  ReadRequest r;
  r.kind = ReadRequest::Kind::kDeadTask;
  r.client = client;
  r.ref = ref;
  r.id = id;
  r.retry = retry;
  r.now = shared_->clock->Now();
  Enqueue(std::move(r));
}

void PgStore::Stats(const std::string& client, uint64_t ref, nlohmann::json live,
                    std::vector<ServiceMinuteStats> pending) {
  ReadRequest r;
  r.kind = ReadRequest::Kind::kStats;
  r.client = client;
  r.ref = ref;
  r.live = std::move(live);
  r.pending = std::move(pending);
  r.now = shared_->clock->Now();
  Enqueue(std::move(r));
}

int PgStore::poll_fd() const { return shared_->loop_wake; }

void PgStore::OnReadable(std::vector<StoreReply>* replies) {
  Drain(shared_->loop_wake);
  std::lock_guard<std::mutex> lock(shared_->mu);
  durable_seq_ = shared_->durable_seq;
  available_ = shared_->available;
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
  return c;
}

}  // namespace rma::broker
