// See pg_internal.h: the reader thread of the PostgreSQL store. It owns the reader connection and
// serves, in order, every request that needs the record once the writes queued before it are
// durable; between requests it runs retention one small batch at a time.
#include <fmt/format.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

#include "broker/pg_internal.h"
#include "broker/pg_values.h"

namespace rma::broker::pg {

using proto::TaskStatus;
using Shared = PgStore::Shared;
using ReadRequest = PgStore::ReadRequest;

namespace {

// The history window of a stats answer (the in-memory history keeps as many minutes).
constexpr int64_t kHistoryMinutes = 60;

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
        MutexLock lock(&s_.mu);
        for (;;) {
          if (s_.stopping) return;
          if (!s_.reads.empty()) {
            ReadRequest& front = s_.reads.front();
            if (front.after_seq <= s_.durable_seq || !s_.usable()) {
              unavailable = front.after_seq > s_.durable_seq;
              request = std::move(front);
              s_.reads.pop_front();
              break;
            }
            s_.reader_cv.Wait(s_.mu);  // for the writes it must see
            continue;
          }
          if (retention && std::chrono::steady_clock::now() >= next_retention) break;
          if (retention) {
            s_.reader_cv.WaitUntil(s_.mu, next_retention);
          } else {
            s_.reader_cv.Wait(s_.mu);
          }
        }
      }
      if (request) {
        Serve(std::move(*request), unavailable);
        continue;
      }
      // Retention: one small batch at a time, so reads never wait long behind it.
      bool more;
      {
        CallWatch watch(s_, s_.reader_call_since);
        more = RetentionBatch();
      }
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
      if (s_.options.ha_epoch != 0) PrepareHaSession(*conn, s_.options);
      conn_ = std::move(conn);
    } catch (const std::exception& e) {
      spdlog::warn("store: reader cannot reach the database: {}", OneLine(e.what()));
      next_connect_ = std::chrono::steady_clock::now() + s_.options.reconnect_min;
    }
    return conn_.get();
  }

  void Serve(ReadRequest req, bool unavailable) {
    Status why = Status::Unavailable("the task store is unavailable (database unreachable)");
    CallWatch watch(s_, s_.reader_call_since);
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
      // Statistics still have an answer: the loop's own, with the reason the record is missing.
      r.stats = StoredStatsAnswer{req.ref, why};
    } else if (req.kind == ReadRequest::Kind::kConsole) {
      r.console = ConsoleAnswer{req.ref, why};
    } else if (req.kind == ReadRequest::Kind::kAccount) {
      AccountAnswer a;
      a.op = req.account.op;
      a.ref = req.ref;
      a.document = why;
      r.account = std::move(a);
    } else if (req.kind == ReadRequest::Kind::kKey) {
      r.message = proto::ErrorOf(
          req.submit.ref, Status::Unavailable(why.message() + "; the task was not accepted"));
    } else {
      r.message =
          proto::ErrorOf(req.kind == ReadRequest::Kind::kList ? req.list.ref : req.ref, why);
    }
    s_.Reply(std::move(r));
  }

  void Execute(pqxx::connection& conn, ReadRequest& req) {
    StoreReply r;
    r.client = req.client;
    switch (req.kind) {
      case ReadRequest::Kind::kGet: {
        pqxx::read_transaction tx(conn);
        pqxx::result rows =
            tx.exec_prepared(req.caller.detail ? "rma_get_task_detail" : "rma_get_task",
                             static_cast<int64_t>(req.id.value()));
        // Another owner's task does not exist for this caller (as in the scheduler's MaySee).
        if (rows.empty() || (!req.caller.admin && Text(rows[0][24]) != req.caller.owner)) {
          r.message =
              proto::ErrorOf(req.ref, Status::NotFound("task " + ToString(req.id) + " not found"));
        } else {
          TaskRecord record = RecordFromRow(rows[0]);
          proto::TaskInfo info{req.ref, ViewOf(record, /*with_result=*/true)};
          if (req.caller.detail) AddDetail(record, &info.task);
          r.message = std::move(info);
        }
        break;
      }
      case ReadRequest::Kind::kList: {
        const proto::List& l = req.list;
        Result<ListFilter> filter = ParseListFilter(l);
        if (!filter.ok()) {
          r.message = proto::ErrorOf(l.ref, filter.status());
          break;
        }
        pqxx::read_transaction tx(conn);
        // One more row than asked: whether there is a next page.
        pqxx::result rows = tx.exec(ListSql(tx, *filter));
        proto::TaskList list;
        list.ref = l.ref;
        TaskRecord last;
        for (const pqxx::row& row : rows) {
          if (list.tasks.size() == filter->limit) {
            list.next_cursor = EncodeCursor(CursorOf(last));
            break;
          }
          last = RecordFromRow(row);
          list.tasks.push_back(ViewOf(last, /*with_result=*/false));
        }
        r.message = std::move(list);
        break;
      }
      case ReadRequest::Kind::kKey: {
        pqxx::read_transaction tx(conn);
        pqxx::result rows = tx.exec_prepared("rma_find_key", CleanText(req.submit.owner),
                                             CleanText(req.submit.idempotency_key));
        if (rows.empty()) {
          r.resubmit = std::move(req.submit);  // a new key: the scheduler takes the task
        } else {
          proto::Accepted a;
          a.ref = req.submit.ref;
          a.task_id = TaskId(static_cast<uint64_t>(Int(rows[0][0])));
          a.status = proto::ParseTaskStatus(Text(rows[0][1])).value_or(TaskStatus::kQueued);
          a.duplicate = true;
          r.message = a;
        }
        break;
      }
      case ReadRequest::Kind::kDeadTask:
        DeadTask(conn, req, &r);
        break;
      case ReadRequest::Kind::kStats:
        StatsAnswer(conn, req, &r);
        break;
      case ReadRequest::Kind::kAccount:
        r.account.emplace();
        ExecuteAccount(conn, req.account, &*r.account);
        break;
      case ReadRequest::Kind::kConsole:
        Console(conn, req, &r);
        break;
    }
    s_.Reply(std::move(r));
  }

  void DeadTask(pqxx::connection& conn, ReadRequest& req, StoreReply* r) {
    const std::string action = req.retry ? "retry" : "discard";
    pqxx::work tx(conn);
    if (s_.options.ha_epoch != 0) tx.exec(FenceSql(s_.options.ha_epoch));
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
        r->restore.push_back(Requeued(std::move(record)));
      } else {
        tx.exec_prepared("rma_discard_dead", static_cast<int64_t>(req.id.value()));
      }
    }
    if (!refused.ok()) {
      r->restore.clear();
      r->message = proto::ErrorOf(req.ref, refused);
      return;
    }
    tx.commit();
    spdlog::info("admin {} of dead task {} (on record only)", action, ToString(req.id));
    r->dead_task = DeadTaskDone{req.ref, req.id, req.retry};
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
        AddToHistory(&history, MinuteFromRow(row));
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
    r->stats = StoredStatsAnswer{req.ref, std::move(stored)};
  }

  // The console's queries on the record (store.h, ConsoleRequest).
  void Console(pqxx::connection& conn, ReadRequest& req, StoreReply* r) {
    const ConsoleRequest& c = req.console;
    if (c.query == "dead_letters") {
      // tasks_rare_status_idx holds the dead rows: no scan of the others.
      pqxx::read_transaction tx(conn);
      nlohmann::json groups = nlohmann::json::array();
      uint64_t total = 0;
      for (const pqxx::row& row :
           tx.exec("SELECT service, coalesce(error_code, ''), count(*), " +
                   Micros("min(coalesce(completed_at, created_at))") + ", " +
                   Micros("max(coalesce(completed_at, created_at))") +
                   " FROM tasks WHERE status = 'dead' GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2")) {
        const auto count = static_cast<uint64_t>(Int(row[2]));
        total += count;
        groups.push_back({{"service", Text(row[0])},
                          {"error_code", Text(row[1])},
                          {"count", count},
                          {"oldest", Timestamp(row[3])},
                          {"newest", Timestamp(row[4])}});
      }
      r->console = ConsoleAnswer{c.ref, nlohmann::json{{"total", total}, {"groups", groups}}};
      return;
    }
    if (c.query == "bulk_retry" || c.query == "bulk_discard") {
      const bool retry = c.query == "bulk_retry";
      uint64_t matched = c.matched;
      uint64_t done = c.done;
      std::vector<TaskId> discarded;
      if (c.limit > 0) {
        pqxx::work tx(conn);
        if (s_.options.ha_epoch != 0) tx.exec(FenceSql(s_.options.ha_epoch));
        std::string where = "status = 'dead'";
        if (!c.service.empty()) where += " AND service = " + tx.quote(CleanText(c.service));
        if (!c.error_code.empty()) {
          where += " AND error_code = " + tx.quote(CleanText(c.error_code));
        }
        if (!c.task_ids.empty()) {
          std::vector<uint64_t> ids;
          for (TaskId id : c.task_ids) ids.push_back(id.value());
          where += " AND task_id = ANY(" + tx.quote(IdArrayLiteral(ids)) + "::bigint[])";
        }
        if (!c.exclude.empty()) {
          std::vector<uint64_t> ids;
          for (TaskId id : c.exclude) ids.push_back(id.value());
          where += " AND task_id <> ALL(" + tx.quote(IdArrayLiteral(ids)) + "::bigint[])";
        }
        // SKIP LOCKED: a task a single retry holds is left to it.
        pqxx::result rows =
            tx.exec("SELECT " + SelectColumns(true, true) + " FROM tasks WHERE " + where +
                    " LIMIT " + std::to_string(c.limit) + " FOR UPDATE SKIP LOCKED");
        std::vector<uint64_t> ids;
        for (const pqxx::row& row : rows) {
          TaskRecord record = RecordFromRow(row);
          ids.push_back(record.id.value());
          if (retry) {
            r->restore.push_back(Requeued(std::move(record)));
          } else {
            discarded.push_back(record.id);
          }
        }
        if (!ids.empty()) {
          const std::string id_list = tx.quote(IdArrayLiteral(ids)) + "::bigint[]";
          tx.exec(retry ? "UPDATE tasks SET status = 'queued', failures = 0, requeues = 0, "
                          "error = NULL, error_code = NULL, completed_at = NULL WHERE task_id = "
                          "ANY(" +
                              id_list + ")"
                        : "DELETE FROM tasks WHERE task_id = ANY(" + id_list + ")");
        }
        tx.commit();
        matched += ids.size();
        done += ids.size();
        if (!ids.empty()) {
          spdlog::info("admin bulk {} of {} dead task(s) on record", retry ? "retry" : "discard",
                       ids.size());
        }
      }
      r->console = ConsoleAnswer{
          c.ref,
          nlohmann::json{
              {"action", retry ? "retry" : "discard"}, {"matched", matched}, {"done", done}},
          std::move(discarded)};
      return;
    }
    if (c.query == "history") {
      auto range = ParseHistoryRange(c.range);
      if (!range.ok()) {
        r->console = ConsoleAnswer{c.ref, range.status()};
        return;
      }
      const int64_t span_ms = range->step_s * 1000 * range->points;
      const Time from = FromUnixMs(
          (ToUnixMs(req.now) / (range->step_s * 1000) + 1) * (range->step_s * 1000) - span_ms);
      std::vector<ServiceMinuteStats> minutes;
      {
        pqxx::read_transaction tx(conn);
        // One row per bucket and service, merged in SQL as BucketHistory would merge the minutes
        // (sums; percentiles weighted by their samples; the depth of the bucket's last minute
        // that has one), stamped with its last minute: 7 days of a pool of many services are
        // hundreds of thousands of minute rows, too many to ship to the broker for each chart.
        // date_bin from `from` (aligned on the step) rather than arithmetic on extract(epoch ...),
        // which is numeric: grouping 201,600 rows took 2.6 times as long.
        const std::string bucket = fmt::format("date_bin('{} seconds', minute, {}::timestamptz)",
                                               range->step_s, tx.quote(PgTimestamp(from)));
        auto weighted = [](const std::string& value, const std::string& samples) {
          return "sum(" + value + " * " + samples + ") / nullif(sum(" + samples + "), 0)";
        };
        std::string sql =
            "SELECT " + Micros("max(minute)") +
            ", service, sum(submitted)::bigint, sum(completed)::bigint, sum(failed)::bigint, "
            "sum(dead)::bigint, sum(queue_wait_samples)::bigint, " +
            weighted("queue_wait_p50_ms", "queue_wait_samples") + ", " +
            weighted("queue_wait_p99_ms", "queue_wait_samples") +
            ", sum(run_time_samples)::bigint, " + weighted("run_time_p50_ms", "run_time_samples") +
            ", " + weighted("run_time_p99_ms", "run_time_samples") +
            ", (array_agg(queue_depth ORDER BY minute DESC) FILTER (WHERE queue_depth IS NOT "
            "NULL))[1] FROM service_stats_minute WHERE minute >= " +
            tx.quote(PgTimestamp(from)) + "::timestamptz";
        // One service: service_stats_minute_service_idx; the whole pool: the primary key.
        if (!c.service.empty()) sql += " AND service = " + tx.quote(CleanText(c.service));
        sql += " GROUP BY " + bucket + ", service";
        for (const pqxx::row& row : tx.exec(sql)) minutes.push_back(MinuteFromRow(row));
      }
      // The minute in progress is still in the broker's memory.
      for (const ServiceMinuteStats& p : c.pending) {
        if (c.service.empty() || p.service == c.service) minutes.push_back(p);
      }
      nlohmann::json points = nlohmann::json::array();
      auto ms = [](const std::optional<double>& v) {
        return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
      };
      for (const HistoryPoint& p : BucketHistory(*range, req.now, minutes)) {
        points.push_back({{"at", FormatTime(p.at)},
                          {"submitted", p.submitted},
                          {"completed", p.completed},
                          {"failed", p.failed},
                          {"dead", p.dead},
                          {"throughput_per_s", p.throughput_per_s},
                          {"queue_wait_p50_ms", ms(p.queue_wait_p50_ms)},
                          {"queue_wait_p99_ms", ms(p.queue_wait_p99_ms)},
                          {"run_time_p50_ms", ms(p.run_time_p50_ms)},
                          {"run_time_p99_ms", ms(p.run_time_p99_ms)},
                          {"queue_depth", p.queue_depth}});
      }
      r->console = ConsoleAnswer{c.ref, nlohmann::json{{"service", c.service},
                                                       {"range", range->name},
                                                       {"step_s", range->step_s},
                                                       {"points", std::move(points)}}};
      return;
    }
    r->console = ConsoleAnswer{c.ref, Status::InvalidArgument("unknown console query")};
  }

  // A dead task's record as a retry leaves it: the same reset as Scheduler::RetryDead (and the
  // rma_requeue_dead statement); the scheduler queues it once the change is committed.
  static TaskRecord Requeued(TaskRecord record) {
    record.status = TaskStatus::kQueued;
    record.failures = 0;
    record.requeues = 0;
    record.error.clear();
    record.error_code.clear();
    record.completed_at = Time{};
    return record;
  }

  // A service_stats_minute row: minute (Micros), service, submitted, completed, failed, dead,
  // queue_wait_samples, queue_wait_p50_ms, queue_wait_p99_ms, run_time_samples, run_time_p50_ms,
  // run_time_p99_ms and, when selected, queue_depth.
  static ServiceMinuteStats MinuteFromRow(const pqxx::row& row) {
    auto real = [&](int i) { return row[i].is_null() ? 0 : row[i].as<double>(); };
    ServiceMinuteStats m;
    m.minute = FromUnixUs(Int(row[0]));
    m.service = Text(row[1]);
    m.submitted = static_cast<uint64_t>(Int(row[2]));
    m.completed = static_cast<uint64_t>(Int(row[3]));
    m.failed = static_cast<uint64_t>(Int(row[4]));
    m.dead = static_cast<uint64_t>(Int(row[5]));
    m.queue_wait_samples = static_cast<uint64_t>(Int(row[6]));
    m.queue_wait_p50_ms = real(7);
    m.queue_wait_p99_ms = real(8);
    m.run_time_samples = static_cast<uint64_t>(Int(row[9]));
    m.run_time_p50_ms = real(10);
    m.run_time_p99_ms = real(11);
    if (row.size() > 12 && !row[12].is_null()) m.queue_depth = Int(row[12]);
    return m;
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
        if (s_.options.ha_epoch != 0) tx.exec(FenceSql(s_.options.ha_epoch));
        deleted = tx.exec_prepared("rma_retention", PgTimestamp(now - s_.options.retention), batch)
                      .affected_rows();
        tx.commit();
      }
      if (s_.options.stats_retention.count() > 0) {
        pqxx::work tx(*conn);
        if (s_.options.ha_epoch != 0) tx.exec(FenceSql(s_.options.ha_epoch));
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

void RunReader(PgStore::Shared& shared) { Reader(shared).Run(); }

}  // namespace rma::broker::pg
