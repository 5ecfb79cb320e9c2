// Rules for the names every peer exchanges, written once: service names (worker flags, catalog,
// SUBMIT, TASK, the gateway's routes) obey CheckServiceName everywhere.
#pragma once

#include <string_view>

#include "common/status.h"

namespace rma::proto {

inline constexpr size_t kMaxServiceNameBytes = 64;

// 1 to 64 characters: a letter or digit, then letters, digits, '.', '_' or '-'. The error names
// the rule (and a printable form of the name).
Status CheckServiceName(std::string_view name);
inline bool IsServiceName(std::string_view name) { return CheckServiceName(name).ok(); }

}  // namespace rma::proto
