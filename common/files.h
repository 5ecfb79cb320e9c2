// Small file helpers shared by the executables.
#pragma once

#include <string>

#include "common/status.h"

namespace rma {

// Writes `content` to `path` through a temporary file and a rename, so a reader never sees half of
// it.
Status WriteFileAtomically(const std::string& path, const std::string& content);

}  // namespace rma
