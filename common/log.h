// Logging set-up shared by the executables: spdlog to stderr with a process tag, level from a
// flag/env, control characters in messages escaped. Called once from each main() before any thread
// starts.
#pragma once

#include <spdlog/formatter.h>

#include <memory>
#include <string_view>

#include "common/status.h"

namespace rma {

// level: trace|debug|info|warn|error|off. Returns InvalidArgument for anything else.
Status SetUpLogging(std::string_view process_name, std::string_view level);

// The formatter every rma log line goes through: time, level, process, and the message with control
// characters escaped (a peer-chosen name or reason cannot forge a log line).
std::unique_ptr<spdlog::formatter> MakeLogFormatter();

}  // namespace rma
