// libFuzzer entry point for the ZeroMQ framing (build with clang and -DRMA_FUZZERS=ON; see
// tests/fuzz/README.md). One input is split into frames (a length byte, then the frame).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/protocol_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  rma::fuzz::FramesOneInput(
      rma::fuzz::SplitFrames(std::string_view(reinterpret_cast<const char*>(data), size)));
  return 0;
}
