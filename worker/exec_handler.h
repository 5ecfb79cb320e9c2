// The exec handler: runs a command with the payload on stdin (issue 4 completes it).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "worker/handler.h"

namespace rma::worker {
Result<std::shared_ptr<Handler>> MakeExecHandler(const std::string& command);
}
