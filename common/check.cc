// The cold path of RMA_CHECK: log through spdlog (and stderr, in case logging is not set up) and
// abort.
#include "common/check.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>

namespace rma::internal {

CheckFailure::CheckFailure(const char* condition, const char* file, int line) {
  stream_ << "CHECK failed: " << condition << " at " << file << ":" << line << " ";
}

CheckFailure::~CheckFailure() {
  const std::string text = stream_.str();
  spdlog::critical("{}", text);
  spdlog::shutdown();
  std::fprintf(stderr, "%s\n", text.c_str());
  std::abort();
}

}  // namespace rma::internal
