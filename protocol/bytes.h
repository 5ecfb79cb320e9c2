// Bytes: an immutable byte string shared by reference, for task payloads and results.
//
// A payload is decoded from its frame once and then travels — into the scheduler's task, the
// store's record, the TASK sent to a worker, the TASK_INFO sent back — without being copied again:
// every holder shares one buffer. The buffer never changes after construction, so holders on
// different threads (the broker loop and the store's writer) may read it at once; the reference
// count is atomic. An empty Bytes owns nothing.
//
// Two ways in: Copy(data, size) makes one allocation holding the count and the bytes (what a
// decoder does with bytes in a frame); a std::string is adopted without copying its bytes (what a
// handler's output or a parsed HTTP body becomes).
#pragma once

#include <cstring>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace rma {

class Bytes {
 public:
  Bytes() = default;
  // Adopts `s` (moved, not copied).
  Bytes(std::string s) {  // NOLINT(google-explicit-constructor): payloads are assigned from strings
    if (s.empty()) return;
    auto owned = std::make_shared<const std::string>(std::move(s));
    view_ = *owned;
    owner_ = std::move(owned);
  }
  Bytes(std::string_view s) { *this = Copy(s.data(), s.size()); }  // NOLINT
  Bytes(const char* s) : Bytes(std::string_view(s)) {}             // NOLINT
  // One allocation for the count and a copy of the bytes.
  static Bytes Copy(const char* data, size_t size) {
    Bytes b;
    if (size == 0) return b;
    std::shared_ptr<char[]> buffer = std::make_shared_for_overwrite<char[]>(size);
    std::memcpy(buffer.get(), data, size);
    b.view_ = std::string_view(buffer.get(), size);
    b.owner_ = std::move(buffer);
    return b;
  }

  std::string_view view() const { return view_; }
  operator std::string_view() const { return view_; }  // NOLINT(google-explicit-constructor)
  const char* data() const { return view_.data(); }
  size_t size() const { return view_.size(); }
  bool empty() const { return view_.empty(); }
  // A copy of the bytes, for the rare holder that needs to own a mutable string.
  std::string str() const { return std::string(view_); }
  // Whether two values share one buffer (tests count copies with it).
  bool SharesBufferWith(const Bytes& other) const {
    return owner_ != nullptr && view_.data() == other.view_.data();
  }
  void clear() {
    owner_.reset();
    view_ = {};
  }

  friend bool operator==(const Bytes& a, const Bytes& b) { return a.view_ == b.view_; }
  // One overload per kind of right-hand side, so `bytes == "text"` is not ambiguous between the
  // conversions to Bytes and to std::string_view.
  friend bool operator==(const Bytes& a, std::string_view b) { return a.view_ == b; }
  friend bool operator==(const Bytes& a, const std::string& b) { return a.view_ == b; }
  friend bool operator==(const Bytes& a, const char* b) { return a.view_ == b; }
  friend std::ostream& operator<<(std::ostream& os, const Bytes& b) { return os << b.view_; }

 private:
  std::shared_ptr<const void> owner_;  // keeps the bytes view_ points into alive
  std::string_view view_;
};

}  // namespace rma
