// SecureRandom: unpredictable 64-bit values from the kernel's CSPRNG (getrandom), read a page at a
// time so a value costs a copy, not a system call. For identifiers an outsider must not guess (task
// ids, secrets); std::mt19937 is not one of those sources: its state follows from 624 outputs.
// Not thread-safe: give each thread its own.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace rma {

class SecureRandom {
 public:
  uint64_t Next();
  // `bytes` random bytes as lowercase hex (2 characters a byte).
  std::string Hex(size_t bytes);

 private:
  void Refill();
  std::array<uint64_t, 512> buffer_{};
  size_t next_ = buffer_.size();
};

}  // namespace rma
