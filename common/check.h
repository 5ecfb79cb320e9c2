// RMA_CHECK: the invariant check. A broken invariant is a bug, not an error to handle: the check
// logs the condition, file, line and an optional streamed message, then aborts. Faults caused by
// peers or input are never CHECKed; they get a Status. Usable from any thread.
#pragma once

#include <sstream>
#include <string_view>

namespace rma::internal {

// Collects the streamed message and aborts in its destructor.
class CheckFailure {
 public:
  CheckFailure(const char* condition, const char* file, int line);
  [[noreturn]] ~CheckFailure();
  CheckFailure(const CheckFailure&) = delete;
  CheckFailure& operator=(const CheckFailure&) = delete;

  template <typename T>
  CheckFailure& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

// Lets `RMA_CHECK(c) << "msg"` compile to a single branch with the stream on the cold path.
struct Voidify {
  void operator&(CheckFailure&) {}
};

}  // namespace rma::internal

#define RMA_CHECK(condition) \
  (condition)                \
      ? (void)0              \
      : ::rma::internal::Voidify() & ::rma::internal::CheckFailure(#condition, __FILE__, __LINE__)
