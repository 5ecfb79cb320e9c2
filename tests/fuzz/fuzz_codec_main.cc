// libFuzzer entry point for the msgpack codec (build with clang and -DRMA_FUZZERS=ON; see
// tests/fuzz/README.md). One input is one body, decoded as every message type.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/protocol_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rma::fuzz::CodecOneInput(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
