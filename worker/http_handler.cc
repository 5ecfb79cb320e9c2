// Placeholder until the http handler lands: refuses the spec clearly instead of pretending to work.
#include "worker/http_handler.h"

namespace rma::worker {
Result<std::shared_ptr<Handler>> MakeHttpHandler(const std::string& spec) {
  return Status::InvalidArgument("http handlers are not available in this build yet: '" + spec +
                                 "'");
}
}  // namespace rma::worker
