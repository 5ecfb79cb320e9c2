// PgLease: broker high availability's lease in PostgreSQL (--ha). Runs the Lease rules (lease.h)
// against the broker_lease row (schemas/sql/009_ha.sql) on its own thread and connection: a
// standby tries to take an expired lease every LeaseOptions::standby_poll, the leader renews it
// three times per lease. Leading() is what the broker loop asks before it serves anything; it is
// answered from the clock and the last renewal alone, never by waiting on the database.
//
// Threads: its own thread owns the connection; every public method may be called from any thread
// (the broker loop, main, the store's writer when a write is fenced).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "broker/lease.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"

namespace rma::broker {

struct PgLeaseOptions {
  std::string url;
  LeaseOptions lease;
  std::string holder;  // this process, as the lease row names it (host, pid, a random instance)
};

// What a standby tells a peer about the leader, as last read from the lease row.
struct LeaderInfo {
  int64_t epoch = 0;
  std::string holder;
  std::string workers_endpoint;
  std::string clients_endpoint;
  bool live = false;  // its lease had not expired when read
};

class PgLease {
 public:
  PgLease(PgLeaseOptions options, const Clock* clock);
  // Gives the lease up when leading (a standby takes over at its next poll), then stops.
  ~PgLease();
  PgLease(const PgLease&) = delete;
  PgLease& operator=(const PgLease&) = delete;

  void Start();
  bool started() const { return thread_.joinable(); }
  uint64_t terms() const RMA_EXCLUDES(mu_) {
    MutexLock lock(&mu_);
    return lease_.terms();
  }
  // Where this broker serves, written into the lease row when it wins (what standbys tell peers).
  void SetEndpoints(std::string workers, std::string clients);
  // Whether this broker may serve now.
  bool Leading() const;
  // The epoch of the current term (0: standby).
  int64_t epoch() const;
  LeaderInfo leader() const;
  // A write carrying this epoch was refused by the database: another broker leads.
  void OnFenced(int64_t epoch);
  // Gives the lease up now (a clean stop): a standby may take over without waiting for it to
  // expire.
  void Release();

 private:
  void Run();
  // One statement; returns whether the connection is still worth keeping.
  void Acquire();
  void Renew();

  const PgLeaseOptions options_;
  const Clock* clock_;
  std::thread thread_;
  mutable Mutex mu_;
  CondVar cv_;
  Lease lease_ RMA_GUARDED_BY(mu_);
  LeaderInfo leader_ RMA_GUARDED_BY(mu_);
  std::string workers_endpoint_ RMA_GUARDED_BY(mu_);
  std::string clients_endpoint_ RMA_GUARDED_BY(mu_);
  bool stopping_ RMA_GUARDED_BY(mu_) = false;
  bool release_ RMA_GUARDED_BY(mu_) = false;  // give the lease up at the next turn
  // The lease thread's connection (pqxx stays inside pg_lease.cc).
  struct Connection;
  std::unique_ptr<Connection> conn_;  // lease thread only
};

}  // namespace rma::broker
