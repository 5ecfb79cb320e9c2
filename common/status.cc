// Names and formatting for Status; see status.h.
#include "common/status.h"

#include <array>

namespace rma {
namespace {
constexpr std::array<std::string_view, 12> kCodeNames = {
    "ok",
    "invalid_argument",
    "not_found",
    "already_exists",
    "failed_precondition",
    "resource_exhausted",
    "unavailable",
    "deadline_exceeded",
    "cancelled",
    "unauthenticated",
    "permission_denied",
    "internal",
};
}  // namespace

std::string_view StatusCodeName(StatusCode code) {
  auto index = static_cast<size_t>(code);
  return index < kCodeNames.size() ? kCodeNames[index] : "internal";
}

StatusCode StatusCodeFromName(std::string_view name) {
  for (size_t i = 0; i < kCodeNames.size(); ++i) {
    if (kCodeNames[i] == name) return static_cast<StatusCode>(i);
  }
  return StatusCode::kInternal;
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  std::string out(StatusCodeName(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string m(context);
  m += ": ";
  m += message_;
  return Status(code_, std::move(m));
}

}  // namespace rma
