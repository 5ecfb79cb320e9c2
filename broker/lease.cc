// See lease.h.
#include "broker/lease.h"

#include <algorithm>

namespace rma::broker {

namespace {
// The leader renews three times per lease: two renewals in a row may fail before it runs out.
constexpr int kRenewalsPerLease = 3;
// The leader stops this fraction of the lease before its own estimate of the expiry: room for the
// brokers' clocks to run at slightly different rates.
constexpr int kMarginDivisor = 10;
}  // namespace

Lease::Lease(LeaseOptions options, Time now) : options_(options), due_(now) {}

void Lease::OnAcquired(Time sent, int64_t epoch, Time now) {
  role_ = Role::kLeader;
  epoch_ = epoch;
  leader_epoch_ = epoch;
  ++terms_;
  valid_until_ = sent + options_.lease - options_.lease / kMarginDivisor;
  if (now >= valid_until_) {
    BecomeStandby(now);  // won, but the answer took longer than the lease: nothing to serve with
    return;
  }
  due_ = sent + options_.lease / kRenewalsPerLease;
}

void Lease::OnHeld(int64_t leader_epoch, Time now) {
  BecomeStandby(now);
  leader_epoch_ = leader_epoch;
}

void Lease::OnRenewed(Time sent, Time now) {
  if (role_ != Role::kLeader) return;
  // An answer that comes after the lease ran out is too late: the loop has seen Leading() false and
  // stepped down, and a new term needs a new epoch.
  if (now >= valid_until_) {
    BecomeStandby(now);
    return;
  }
  valid_until_ = std::max(valid_until_, sent + options_.lease - options_.lease / kMarginDivisor);
  due_ = sent + options_.lease / kRenewalsPerLease;
}

Lease::Action Lease::Next(Time now) {
  if (role_ == Role::kLeader && now >= valid_until_) BecomeStandby(now);
  return role_ == Role::kLeader ? Action::kRenew : Action::kAcquire;
}

void Lease::OnLost(Time now) { BecomeStandby(now); }

void Lease::OnFailed(Time now) {
  if (role_ == Role::kLeader && now >= valid_until_) {
    BecomeStandby(now);
    return;
  }
  due_ = now + options_.retry;
}

void Lease::BecomeStandby(Time now) {
  role_ = Role::kStandby;
  epoch_ = 0;
  valid_until_ = Time{};
  due_ = now + options_.standby_poll;
}

}  // namespace rma::broker
