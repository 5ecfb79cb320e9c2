// See ids.h.
#include "protocol/ids.h"

#include <charconv>

namespace rma {

std::optional<TaskId> ParseTaskId(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || ptr != text.data() + text.size() || value == 0) return std::nullopt;
  return TaskId(value);
}

}  // namespace rma
