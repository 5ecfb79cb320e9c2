// The rma release every process reports (agent_version, /health, --version).
#pragma once

namespace rma {
inline constexpr const char* kVersion = "0.1.0";
}
