// Logging set-up shared by the executables: spdlog to stderr with a process tag, level from a
// flag/env. Called once from each main() before any thread starts.
#pragma once

#include <string_view>

#include "common/status.h"

namespace rma {

// level: trace|debug|info|warn|error|off. Returns InvalidArgument for anything else.
Status SetUpLogging(std::string_view process_name, std::string_view level);

}  // namespace rma
