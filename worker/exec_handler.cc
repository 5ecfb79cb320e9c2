// Placeholder until the exec handler lands: refuses the spec clearly instead of pretending to work.
#include "worker/exec_handler.h"

namespace rma::worker {
Result<std::shared_ptr<Handler>> MakeExecHandler(const std::string& command) {
  return Status::InvalidArgument("exec handlers are not available in this build yet: '" + command +
                                 "'");
}
}  // namespace rma::worker
