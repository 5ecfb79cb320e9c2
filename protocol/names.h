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

// Model names (a service's `models` in READY and MANIFEST, SUBMIT's `model`): what LLM servers call
// their models ("llama3:8b", "meta-llama/Llama-3.1-8B-Instruct"), so any printable ASCII without
// spaces, 1 to 256 bytes. A service lists at most 256.
inline constexpr size_t kMaxModelBytes = 256;
inline constexpr size_t kMaxModelsPerService = 256;
Status CheckModelName(std::string_view name);
inline bool IsModelName(std::string_view name) { return CheckModelName(name).ok(); }

}  // namespace rma::proto
