// See admission.h.
#include "gateway/admission.h"

namespace rma::gateway {

void ConnectionLimiter::Slot::Release() {
  if (owner_ == nullptr) return;
  owner_->Give(address_);
  owner_.reset();
}

ConnectionLimiter::Slot ConnectionLimiter::Acquire(const std::string& address) {
  {
    MutexLock lock(&mu_);
    size_t& n = open_[address];
    if (per_address_ != 0 && n >= per_address_) {
      if (n == 0) open_.erase(address);
      return Slot();
    }
    ++n;
  }
  return Slot(shared_from_this(), address);
}

size_t ConnectionLimiter::open(const std::string& address) const {
  MutexLock lock(&mu_);
  auto it = open_.find(address);
  return it == open_.end() ? 0 : it->second;
}

void ConnectionLimiter::Give(const std::string& address) {
  MutexLock lock(&mu_);
  auto it = open_.find(address);
  if (it == open_.end()) return;
  if (--it->second == 0) open_.erase(it);
}

bool BodyBudget::Take(size_t bytes) {
  size_t used = used_.load(std::memory_order_relaxed);
  do {
    if (bytes > max_ || used > max_ - bytes) return false;
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return true;
}

bool BodyBudget::Reserve(size_t bytes, Lease* lease) {
  if (!Take(bytes)) return false;
  lease->Release();
  lease->owner_ = shared_from_this();
  lease->bytes_ = bytes;
  return true;
}

bool BodyBudget::Lease::GrowTo(size_t total) {
  if (owner_ == nullptr || total <= bytes_) return owner_ != nullptr;
  if (!owner_->Take(total - bytes_)) return false;
  bytes_ = total;
  return true;
}

void BodyBudget::Lease::Release() {
  if (owner_ == nullptr) return;
  owner_->Give(bytes_);
  owner_.reset();
  bytes_ = 0;
}

}  // namespace rma::gateway
