// Bytes: an immutable byte string shared by reference, for task payloads and results.
//
// A payload is decoded from its frame once and then travels — into the scheduler's task, the
// store's record, the TASK sent to a worker, the TASK_INFO sent back — without being copied again:
// every holder shares one buffer. The buffer never changes after construction, so holders on
// different threads (the broker loop and the store's writer) may read it at once; the reference
// count is atomic. An empty Bytes owns nothing.
#pragma once

#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace rma {

class Bytes {
 public:
  Bytes() = default;
  // Takes ownership of `s` (moved, not copied).
  Bytes(std::string s)  // NOLINT(google-explicit-constructor): payloads are assigned from strings
      : data_(s.empty() ? nullptr : std::make_shared<const std::string>(std::move(s))) {}
  Bytes(std::string_view s) : Bytes(std::string(s)) {}  // NOLINT(google-explicit-constructor)
  Bytes(const char* s) : Bytes(std::string(s)) {}       // NOLINT(google-explicit-constructor)

  std::string_view view() const { return data_ ? std::string_view(*data_) : std::string_view(); }
  operator std::string_view() const { return view(); }  // NOLINT(google-explicit-constructor)
  const char* data() const { return view().data(); }
  size_t size() const { return data_ ? data_->size() : 0; }
  bool empty() const { return size() == 0; }
  // A copy of the bytes, for the rare holder that needs to own a mutable string.
  std::string str() const { return std::string(view()); }
  // Whether two values share one buffer (tests count copies with it).
  bool SharesBufferWith(const Bytes& other) const { return data_ && data_ == other.data_; }
  void clear() { data_.reset(); }

  friend bool operator==(const Bytes& a, const Bytes& b) { return a.view() == b.view(); }
  // One overload per kind of right-hand side, so `bytes == "text"` is not ambiguous between the
  // conversions to Bytes and to std::string_view.
  friend bool operator==(const Bytes& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const Bytes& a, const std::string& b) { return a.view() == b; }
  friend bool operator==(const Bytes& a, const char* b) { return a.view() == b; }
  friend std::ostream& operator<<(std::ostream& os, const Bytes& b) { return os << b.view(); }

 private:
  std::shared_ptr<const std::string> data_;
};

}  // namespace rma
