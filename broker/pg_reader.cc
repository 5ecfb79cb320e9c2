// See pg_internal.h: the reader thread of the PostgreSQL store. It owns the reader connection and
// serves, in order, every request that needs the record once the writes queued before it are
// durable; between requests it runs retention one small batch at a time.
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
        pqxx::result rows = tx.exec_prepared("rma_get_task", static_cast<int64_t>(req.id.value()));
        if (rows.empty()) {
          r.message =
              proto::ErrorOf(req.ref, Status::NotFound("task " + ToString(req.id) + " not found"));
        } else {
          r.message =
              proto::TaskInfo{req.ref, ViewOf(RecordFromRow(rows[0]), /*with_result=*/true)};
        }
        break;
      }
      case ReadRequest::Kind::kList: {
        const proto::List& l = req.list;
        if (!l.status.empty() && !proto::ParseTaskStatus(l.status)) {
          r.message =
              proto::ErrorOf(l.ref, Status::InvalidArgument("unknown status '" + l.status + "'"));
          break;
        }
        int64_t limit = std::clamp<int64_t>(l.limit == 0 ? 100 : l.limit, 1, 1000);
        pqxx::read_transaction tx(conn);
        pqxx::result rows;
        // An admin lists every owner's tasks (NULL), anybody else their own.
        const std::optional<std::string> owner =
            l.admin ? std::nullopt : std::optional<std::string>(CleanText(l.owner));
        if (!l.service.empty() && !l.status.empty()) {
          rows = tx.exec_prepared("rma_list_both", owner, CleanText(l.service), l.status, limit);
        } else if (!l.service.empty()) {
          rows = tx.exec_prepared("rma_list_service", owner, CleanText(l.service), limit);
        } else if (!l.status.empty()) {
          rows = tx.exec_prepared("rma_list_status", owner, l.status, limit);
        } else {
          rows = tx.exec_prepared("rma_list_all", owner, limit);
        }
        proto::TaskList list;
        list.ref = l.ref;
        for (const pqxx::row& row : rows) {
          list.tasks.push_back(ViewOf(RecordFromRow(row), /*with_result=*/false));
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
    r->stats = StoredStatsAnswer{req.ref, std::move(stored)};
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
