// Lease: the rules of broker high availability (--ha; docs/operations.md "High availability"), as a
// plain state machine with no I/O and no clock of its own. Several brokers share one database;
// the one holding the lease row (schemas/sql/009_ha.sql) leads, with an epoch that grows at every
// takeover. The adapter (PgLease, pg_lease.h) runs the statements this machine asks for and feeds
// their outcomes back, with the time each statement was sent.
//
// Why a leader may trust its lease: the database sets the lease's expiry to "when it ran the
// statement + lease"; the leader counts "when it sent the statement + lease - margin", which is
// earlier, so it stops serving before any standby can take over, whatever the brokers' clocks say
// (only their rates must roughly agree). A leader that cannot renew (the database is gone, the
// process was paused) therefore stops serving on its own, and its writes are fenced besides.
//
// Not thread-safe: PgLease holds it behind a mutex.
#pragma once

#include <cstdint>

#include "common/clock.h"

namespace rma::broker {

struct LeaseOptions {
  Duration lease = Seconds(5);      // --ha-lease-s
  Duration standby_poll = Ms(500);  // how often a standby looks whether it may take over
  Duration retry = Ms(250);         // after a failed statement (the database unreachable)
};

class Lease {
 public:
  enum class Role { kStandby, kLeader };
  enum class Action { kAcquire, kRenew };

  explicit Lease(LeaseOptions options, Time now);

  // The next statement to run at `now` (not before due()). A leader whose lease ran out while
  // nothing was asked (the process was paused) is a standby again: renewing a lease the broker loop
  // has already stopped serving with would only keep the standbys out for one more lease.
  Action Next(Time now);
  Time due() const { return due_; }

  // An acquire sent at `sent` won the lease with `epoch`.
  void OnAcquired(Time sent, int64_t epoch, Time now);
  // An acquire found the lease held by a live leader (epoch `leader_epoch`).
  void OnHeld(int64_t leader_epoch, Time now);
  // A renewal sent at `sent` went through.
  void OnRenewed(Time sent, Time now);
  // A renewal found a newer epoch on record, or a write was fenced: another broker leads.
  void OnLost(Time now);
  // A statement failed (no answer, no connection): try again soon. A leader keeps leading until its
  // lease runs out.
  void OnFailed(Time now);
  // The broker stops (or steps down on purpose): it leads no more.
  void OnReleased(Time now) { OnLost(now); }

  // Whether this broker may serve at `now`: it holds the lease and the lease has not run out.
  bool Leading(Time now) const { return role_ == Role::kLeader && now < valid_until_; }
  Role role() const { return role_; }
  // The epoch this broker leads with (0 when standby), or the leader's last seen (standby).
  int64_t epoch() const { return epoch_; }
  int64_t leader_epoch() const { return leader_epoch_; }
  Time valid_until() const { return valid_until_; }
  // How many times this broker won the lease.
  uint64_t terms() const { return terms_; }

 private:
  void BecomeStandby(Time now);

  LeaseOptions options_;
  Role role_ = Role::kStandby;
  int64_t epoch_ = 0;
  int64_t leader_epoch_ = 0;
  Time valid_until_{};
  Time due_{};
  uint64_t terms_ = 0;
};

}  // namespace rma::broker
