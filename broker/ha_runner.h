// RunHighlyAvailable: rma-broker's life with --ha (docs/operations.md "High availability"). The
// broker starts as a standby: its endpoints are bound but every peer is told ERROR not_leader with
// the leader's endpoints, and nothing of the database is touched but the lease. When PgLease wins
// the lease, the standby loop gives way to a full BrokerLoop on the same endpoints, over a PgStore
// fenced with the new epoch, which recovers every accepted task exactly as after a restart. When
// the lease is lost (expired while the process was paused or cut off, taken over, or a write was
// fenced) that loop returns before handling anything more, its store is dropped, and the broker is
// a standby again. Runs on main's thread; the lease has its own.
#pragma once

#include <string>

#include "broker/broker_loop.h"
#include "broker/config.h"
#include "broker/pg_lease.h"
#include "broker/pg_store.h"
#include "common/clock.h"

namespace rma::broker {

struct HaRunOptions {
  BrokerConfig config;
  LoopOptions loop;
  PgStoreOptions store;
  PgLeaseOptions lease;
  std::string endpoints_file;    // written once the endpoints are bound ("" for none)
  bool bootstrap_admin = false;  // --bootstrap-admin, done in the first term
};

// Returns the process's exit code: 0 after SIGINT/SIGTERM (`stop_fd`), 1 on a fatal error.
int RunHighlyAvailable(HaRunOptions run, const Clock* clock, int stop_fd, int reload_fd);

// --bootstrap-admin: creates the first admin account and prints its key once on stdout.
Status BootstrapAdminKey(PgStore& store);

// A new holder name for the lease row: host, pid and a random instance.
std::string LeaseHolderName();

}  // namespace rma::broker
