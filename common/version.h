// The rma release every process reports (agent_version, /health, build_info, User-Agent,
// --version): the project version, plus `git describe --always --dirty --tags` of the tree it was
// built from
// ("0.1.0+v0.1.0-3-g1a2b3c4-dirty"); just the project version when built from a tarball. Defined in
// a file the build generates (cmake/rma_version.cmake) and rewrites only when the text changes, so
// a new commit recompiles that one file instead of everything that includes this header.
#pragma once

namespace rma {
extern const char* const kVersion;
// The `git describe` part alone; empty when the tree was not a git checkout.
extern const char* const kGitDescribe;
}  // namespace rma
