// The http handler: replays a task's HTTP request against a local backend (issue 4 completes it).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "worker/handler.h"

namespace rma::worker {
Result<std::shared_ptr<Handler>> MakeHttpHandler(const std::string& spec);
}
