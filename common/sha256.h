// SHA-256 of a string as 64 lowercase hex digits (OpenSSL's libcrypto). For names derived from
// secrets (a key's account, the stored form of API keys and enrolment tokens): equal inputs give
// equal names, and nothing about the input can be learned from one.
#pragma once

#include <string>
#include <string_view>

namespace rma {

std::string Sha256Hex(std::string_view data);

}  // namespace rma
