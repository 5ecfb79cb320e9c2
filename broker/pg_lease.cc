// See pg_lease.h. libpqxx stays inside this file (and the other broker/pg_*.cc).
#include "broker/pg_lease.h"

#include <spdlog/spdlog.h>

#include <pqxx/pqxx>

#include "broker/pg_internal.h"
#include "broker/pg_values.h"

namespace rma::broker {

struct PgLease::Connection {
  std::unique_ptr<pqxx::connection> conn;
};

namespace {

int64_t Micros(Duration d) { return d.count(); }

// Takes the lease when it has expired, in one round trip; either way reads who holds it (the
// outer SELECT sees the row as it was before the UPDATE).
constexpr const char* kAcquireSql =
    "WITH taken AS (UPDATE broker_lease SET epoch = epoch + 1, holder = $1, workers_endpoint = $2, "
    "clients_endpoint = $3, acquired_at = clock_timestamp(), "
    "expires_at = clock_timestamp() + $4 * interval '1 microsecond' "
    "WHERE id = 1 AND expires_at < clock_timestamp() RETURNING epoch) "
    "SELECT (SELECT epoch FROM taken), epoch, holder, workers_endpoint, clients_endpoint, "
    "expires_at > clock_timestamp() FROM broker_lease WHERE id = 1";
constexpr const char* kRenewSql =
    "UPDATE broker_lease SET expires_at = clock_timestamp() + $2 * interval '1 microsecond' "
    "WHERE id = 1 AND epoch = $1 RETURNING epoch";
constexpr const char* kReleaseSql =
    "UPDATE broker_lease SET expires_at = '-infinity' WHERE id = 1 AND epoch = $1";

}  // namespace

PgLease::PgLease(PgLeaseOptions options, const Clock* clock)
    : options_(std::move(options)),
      clock_(clock),
      lease_(options_.lease, clock->Now()),
      conn_(std::make_unique<Connection>()) {}

PgLease::~PgLease() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

void PgLease::Start() {
  thread_ = std::thread([this] { Run(); });
}

void PgLease::SetEndpoints(std::string workers, std::string clients) {
  MutexLock lock(&mu_);
  workers_endpoint_ = std::move(workers);
  clients_endpoint_ = std::move(clients);
}

bool PgLease::Leading() const {
  const Time now = clock_->Now();
  MutexLock lock(&mu_);
  return lease_.Leading(now);
}

int64_t PgLease::epoch() const {
  MutexLock lock(&mu_);
  return lease_.epoch();
}

LeaderInfo PgLease::leader() const {
  MutexLock lock(&mu_);
  return leader_;
}

void PgLease::OnFenced(int64_t epoch) {
  const Time now = clock_->Now();
  MutexLock lock(&mu_);
  if (lease_.epoch() != epoch) return;  // a term that ended already
  spdlog::error("ha: a write of epoch {} was fenced: another broker leads; stepping down", epoch);
  lease_.OnLost(now);
}

void PgLease::Release() {
  {
    MutexLock lock(&mu_);
    release_ = true;
  }
  cv_.SignalAll();
}

void PgLease::Run() {
  for (;;) {
    Lease::Action action;
    bool release = false;
    int64_t epoch = 0;
    {
      MutexLock lock(&mu_);
      for (;;) {
        if (stopping_ || release_) break;
        const Time now = clock_->Now();
        if (now >= lease_.due()) break;
        cv_.WaitFor(mu_, lease_.due() - now);
      }
      release = release_ || stopping_;
      release_ = false;
      action = lease_.Next(clock_->Now());
      epoch = lease_.epoch();
      if (release) lease_.OnReleased(clock_->Now());
    }
    if (release) {
      if (epoch != 0 && conn_->conn) {
        try {
          pqxx::nontransaction q(*conn_->conn);
          q.exec_params(kReleaseSql, epoch);
          spdlog::info("ha: gave up the lease of epoch {}", epoch);
        } catch (const std::exception& e) {
          spdlog::warn("ha: giving up the lease failed ({}); it expires by itself",
                       pg::OneLine(e.what()));
        }
      }
      MutexLock lock(&mu_);
      if (stopping_) return;
      continue;
    }
    if (!conn_->conn) {
      try {
        conn_->conn = pg::Connect(options_.url, "lease");
        // The lease row is in the schema: a standby on a new database brings it (several at once
        // conflict harmlessly; the loser tries again at its next turn).
        if (Status m = pg::Migrate(*conn_->conn); !m.ok()) throw std::runtime_error(m.message());
        pqxx::nontransaction q(*conn_->conn);
        // A takeover must not queue behind a paused leader's open transaction for long (its
        // writer's session ends it: idle_in_transaction_session_timeout), nor the renewal behind a
        // server that does not answer: a failed statement is retried.
        q.exec("SET lock_timeout = '1s'");
        q.exec("SET statement_timeout = '" +
               std::to_string(std::max<int64_t>(500, ToMs(options_.lease.lease) / 2)) + "ms'");
      } catch (const std::exception& e) {
        conn_->conn.reset();
        spdlog::warn("ha: cannot reach the database for the lease: {}", pg::OneLine(e.what()));
        MutexLock lock(&mu_);
        lease_.OnFailed(clock_->Now());
        continue;
      }
    }
    if (action == Lease::Action::kAcquire) {
      Acquire();
    } else {
      Renew();
    }
  }
}

void PgLease::Acquire() {
  std::string workers, clients;
  {
    MutexLock lock(&mu_);
    workers = workers_endpoint_;
    clients = clients_endpoint_;
  }
  const Time sent = clock_->Now();
  try {
    pqxx::nontransaction q(*conn_->conn);
    pqxx::row row = q.exec_params1(kAcquireSql, options_.holder, workers, clients,
                                   Micros(options_.lease.lease));
    LeaderInfo info;
    info.epoch = row[1].as<int64_t>();
    info.holder = row[2].as<std::string>();
    info.workers_endpoint = row[3].as<std::string>();
    info.clients_endpoint = row[4].as<std::string>();
    info.live = row[5].as<bool>();
    const Time now = clock_->Now();
    MutexLock lock(&mu_);
    if (!row[0].is_null()) {
      const int64_t epoch = row[0].as<int64_t>();
      lease_.OnAcquired(sent, epoch, now);
      leader_ = LeaderInfo{epoch, options_.holder, workers, clients, true};
      spdlog::info("ha: leading with epoch {} (took over from {})", epoch,
                   info.holder.empty() ? "nobody" : info.holder);
    } else {
      if (info.epoch != leader_.epoch && info.live) {
        spdlog::info("ha: standby; the leader is {} (epoch {}, workers {}, clients {})",
                     info.holder, info.epoch, info.workers_endpoint, info.clients_endpoint);
      }
      leader_ = info;
      lease_.OnHeld(info.epoch, now);
    }
  } catch (const std::exception& e) {
    spdlog::debug("ha: acquire failed: {}", pg::OneLine(e.what()));
    if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) conn_->conn.reset();
    MutexLock lock(&mu_);
    lease_.OnFailed(clock_->Now());
  }
}

void PgLease::Renew() {
  int64_t epoch;
  {
    MutexLock lock(&mu_);
    epoch = lease_.epoch();
  }
  const Time sent = clock_->Now();
  try {
    pqxx::nontransaction q(*conn_->conn);
    pqxx::result r = q.exec_params(kRenewSql, epoch, Micros(options_.lease.lease));
    const Time now = clock_->Now();
    MutexLock lock(&mu_);
    if (lease_.epoch() != epoch) return;  // fenced meanwhile
    if (r.empty()) {
      spdlog::error("ha: the lease of epoch {} was taken over; stepping down", epoch);
      lease_.OnLost(now);
      leader_.live = false;
      return;
    }
    lease_.OnRenewed(sent, now);
    if (!lease_.Leading(now)) {
      spdlog::error("ha: the renewal of epoch {} came too late; stepping down", epoch);
    }
  } catch (const std::exception& e) {
    spdlog::warn("ha: renewing the lease failed: {}", pg::OneLine(e.what()));
    if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) conn_->conn.reset();
    const Time now = clock_->Now();
    MutexLock lock(&mu_);
    const bool was_leading = lease_.Leading(now);
    lease_.OnFailed(now);
    if (was_leading && !lease_.Leading(now)) {
      spdlog::error("ha: could not renew the lease of epoch {} in time; stepping down", epoch);
    }
  }
}

}  // namespace rma::broker

namespace rma::broker::pg {

std::string FenceSql(int64_t epoch) { return "SELECT rma_fence(" + std::to_string(epoch) + ")"; }

bool IsFenced(const pqxx::sql_error& e) { return e.sqlstate() == "RM001"; }

Status CheckOneMode(pqxx::connection& conn, bool ha) {
  pqxx::nontransaction q(conn);
  if (ha) {
    // A bigint advisory lock shows as its high and low 32 bits, objsubid 1. pg_locks lists the
    // locks of every database of the server: only this database's broker counts (brokers of other
    // pools may share the server).
    const int64_t holders =
        q.exec_params1(
             "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
             "database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND "
             "objsubid = 1 AND classid::bigint = ($1::bigint >> 32) AND "
             "objid::bigint = ($1::bigint & 4294967295)",
             kBrokerLockKey)[0]
            .as<int64_t>();
    if (holders > 0) {
      return Status::FailedPrecondition(
          "a broker without --ha is using this database (it holds the broker lock): every broker "
          "on a database must run with --ha, or only one without");
    }
    return Status::Ok();
  }
  if (!q.exec("SELECT to_regclass('broker_lease') IS NOT NULL")[0][0].as<bool>()) {
    return Status::Ok();
  }
  pqxx::result live =
      q.exec("SELECT holder FROM broker_lease WHERE id = 1 AND expires_at > clock_timestamp()");
  if (!live.empty()) {
    return Status::FailedPrecondition("brokers with --ha use this database (" +
                                      live[0][0].as<std::string>() +
                                      " leads): start this broker with --ha too");
  }
  return Status::Ok();
}

void PrepareHaSession(pqxx::connection& conn, const PgStoreOptions& options) {
  pqxx::nontransaction q(conn);
  q.exec("SET idle_in_transaction_session_timeout = '" +
         std::to_string(std::max<int64_t>(1, ToMs(options.ha_idle_transaction_timeout))) + "ms'");
  // The account tables' triggers fence every statement of this session with it (009_ha.sql).
  q.exec("SET rma.epoch = '" + std::to_string(options.ha_epoch) + "'");
}

}  // namespace rma::broker::pg
