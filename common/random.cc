// See random.h.
#include "common/random.h"

#include <sys/random.h>

#include <cerrno>

#include "common/check.h"

namespace rma {

void SecureRandom::Refill() {
  auto* out = reinterpret_cast<char*>(buffer_.data());
  size_t want = sizeof buffer_;
  while (want > 0) {
    ssize_t n = getrandom(out, want, 0);
    if (n < 0 && errno == EINTR) continue;
    // Without the kernel's randomness no id would be safe to hand out: a broken invariant of the
    // machine, not an input error.
    RMA_CHECK(n > 0) << "getrandom failed: errno " << errno;
    out += n;
    want -= static_cast<size_t>(n);
  }
  next_ = 0;
}

uint64_t SecureRandom::Next() {
  if (next_ == buffer_.size()) Refill();
  return buffer_[next_++];
}

std::string SecureRandom::Hex(size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes * 2);
  while (out.size() < bytes * 2) {
    uint64_t v = Next();
    for (int i = 0; i < 8 && out.size() < bytes * 2; ++i, v >>= 8) {
      out.push_back(kHex[(v >> 4) & 0xf]);
      out.push_back(kHex[v & 0xf]);
    }
  }
  return out;
}

}  // namespace rma
