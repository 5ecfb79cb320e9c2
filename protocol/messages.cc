// Names of the protocol's enumerations; see messages.h.
#include "protocol/messages.h"

#include <array>

namespace rma::proto {

std::string_view CommandName(Command c) {
  switch (c) {
    case Command::kReady:
      return "READY";
    case Command::kWelcome:
      return "WELCOME";
    case Command::kTask:
      return "TASK";
    case Command::kResult:
      return "RESULT";
    case Command::kProgress:
      return "PROGRESS";
    case Command::kCancel:
      return "CANCEL";
    case Command::kHeartbeat:
      return "HEARTBEAT";
    case Command::kManifest:
      return "MANIFEST";
    case Command::kDrain:
      return "DRAIN";
    case Command::kDisconnect:
      return "DISCONNECT";
    case Command::kError:
      return "ERROR";
    case Command::kSubmit:
      return "SUBMIT";
    case Command::kAccepted:
      return "ACCEPTED";
    case Command::kTaskInfo:
      return "TASK_INFO";
    case Command::kGet:
      return "GET";
    case Command::kCancelTask:
      return "CANCEL_TASK";
    case Command::kList:
      return "LIST";
    case Command::kTaskList:
      return "TASK_LIST";
    case Command::kAdmin:
      return "ADMIN";
    case Command::kAdminReply:
      return "ADMIN_REPLY";
    case Command::kPartial:
    case Command::kCallPartial:
      return "PARTIAL";
  }
  return "UNKNOWN";
}

bool IsKnownCommand(uint8_t byte) {
  return (byte >= 0x01 && byte <= 0x0C) || (byte >= 0x21 && byte <= 0x2A);
}

namespace {
constexpr std::array<std::string_view, 7> kStatusNames = {
    "queued", "running", "completed", "failed", "dead", "cancelled", "expired"};
}

const std::vector<std::string_view>& TaskStatusNames() {
  static const std::vector<std::string_view> names(kStatusNames.begin(), kStatusNames.end());
  return names;
}

std::string_view TaskStatusName(TaskStatus s) { return kStatusNames[static_cast<size_t>(s)]; }

std::optional<TaskStatus> ParseTaskStatus(std::string_view name) {
  for (size_t i = 0; i < kStatusNames.size(); ++i) {
    if (kStatusNames[i] == name) return static_cast<TaskStatus>(i);
  }
  return std::nullopt;
}

std::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kOk:
      return "ok";
    case Outcome::kError:
      return "error";
    case Outcome::kCancelled:
      return "cancelled";
  }
  return "error";
}

std::optional<Outcome> ParseOutcome(std::string_view name) {
  if (name == "ok") return Outcome::kOk;
  if (name == "error") return Outcome::kError;
  if (name == "cancelled") return Outcome::kCancelled;
  return std::nullopt;
}

std::string_view SubmitModeName(SubmitMode m) { return m == SubmitMode::kSync ? "sync" : "async"; }

std::optional<SubmitMode> ParseSubmitMode(std::string_view name) {
  if (name == "async") return SubmitMode::kAsync;
  if (name == "sync") return SubmitMode::kSync;
  return std::nullopt;
}

Error ErrorOf(uint64_t ref, const Status& s) {
  Error e;
  e.ref = ref;
  e.code = std::string(StatusCodeName(s.code()));
  e.message = s.message();
  return e;
}

}  // namespace rma::proto
