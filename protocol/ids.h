// Strong identifiers shared by every process.
//
// TaskId is a 64-bit number chosen by the broker (monotonic, seeded past the microsecond clock and
// past the largest id in the store, so ids never repeat across restarts; below 2^53 so JSON numbers
// would hold it, though the HTTP API renders it as a decimal string). WorkerId is the worker's
// stable identity string, kept in its data directory across restarts.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/strong_id.h"

namespace rma {

struct TaskIdTag {};
struct WorkerIdTag {};
using TaskId = StrongId<TaskIdTag, uint64_t>;
using WorkerId = StrongId<WorkerIdTag, std::string>;

inline std::string ToString(TaskId id) { return std::to_string(id.value()); }
// Parses the decimal form; nullopt for anything else (empty, signs, junk, overflow, zero).
std::optional<TaskId> ParseTaskId(std::string_view text);

}  // namespace rma
