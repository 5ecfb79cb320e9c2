// See sha256.h.
#include "common/sha256.h"

#include <openssl/evp.h>

#include "common/check.h"

namespace rma {

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  const bool hashed =
      EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) == 1;
  RMA_CHECK(hashed && length == 32) << "SHA-256 failed";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (unsigned int i = 0; i < length; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

}  // namespace rma
