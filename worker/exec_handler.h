// The exec handler: runs `/bin/sh -c COMMAND` for each task with the payload on stdin and returns
// its stdout (see subprocess.h for how the child is started, bounded and killed). A non-zero exit
// is a task error carrying the tail of stderr; cancel and timeout kill the whole process group.
// The command also finds the task in its environment: RMA_TASK_ID, RMA_ATTEMPT, RMA_SERVICE and
// RMA_CONTENT_TYPE (the payload's content type). With HandlerOptions::stream_output (or a
// text/event-stream content type) the command's stdout also streams to the caller as it is
// written, each read a PARTIAL chunk with status 200; the RESULT still carries all of it.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "worker/handler.h"

namespace rma::worker {

// InvalidArgument for an empty command or one with a NUL byte.
Result<std::shared_ptr<Handler>> MakeExecHandler(const std::string& command,
                                                 const HandlerOptions& options);

}  // namespace rma::worker
