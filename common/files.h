// Small file helpers shared by the executables.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace rma {

// Writes `content` to `path` through a temporary file and a rename, so a reader never sees half of
// it.
Status WriteFileAtomically(const std::string& path, const std::string& content);
// The same for a secret: the file is created readable and writable by its owner only (0600), umask
// or not.
Status WritePrivateFileAtomically(const std::string& path, const std::string& content);

// Reads a secret kept in a file (a token, a password): the first line, surrounding whitespace
// removed. Refuses an empty secret, and a file that others than its owner can read or write (the
// way ssh treats private keys), naming the file and the fix (chmod 600).
Result<std::string> ReadSecretFile(const std::string& path);

// Raises the soft limit on open files to the hard limit (every connected worker costs the broker
// one), and returns the new soft limit.
uint64_t RaiseFileLimit();

}  // namespace rma
