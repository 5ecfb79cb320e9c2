// Bounded fuzzing of the protocol decoders in ctest (issue 12): the msgpack codec and the ZeroMQ
// framing get a fixed number of mutated inputs each, from a fixed seed, so every run is the same
// and takes seconds (RMA_FUZZ_ITERATIONS scales it: CI runs the default, a long local run can
// pass 100x). The properties are in protocol_targets.cc; they abort on a violation, and the
// sanitizer build turns memory errors into failures. A clang build with -DRMA_FUZZERS=ON also
// builds libFuzzer binaries over the same targets (tests/fuzz/README.md).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "protocol/messages.h"
#include "tests/fuzz/protocol_targets.h"
#include "tests/support/mutator.h"

namespace rma::fuzz {
namespace {

size_t Iterations(size_t base) {
  const char* scale = std::getenv("RMA_FUZZ_ITERATIONS");
  return scale != nullptr && std::atoi(scale) > 0 ? static_cast<size_t>(std::atoi(scale)) : base;
}

TEST(ProtocolFuzzTest, CodecMutationsAreRefusedOrRoundTrip) {
  const std::vector<std::string> samples = SampleBodies();
  const std::vector<std::string> dictionary = CodecDictionary();
  testing::Mutator mutator(20261206);
  size_t accepted = 0;
  const size_t n = Iterations(60000);
  for (size_t i = 0; i < n; ++i) {
    std::string body = mutator.Mutate(mutator.Pick(samples), dictionary);
    accepted += CodecOneInput(body) > 0 ? 1 : 0;
  }
  // The mutations must reach both sides: some inputs refused, some still accepted (and then
  // round-tripped). If either count is zero the test is not exercising the decoders.
  EXPECT_GT(accepted, n / 50) << "too few mutated inputs were accepted";
  EXPECT_LT(accepted, n) << "no mutated input was refused";
  for (const std::string& s : samples) EXPECT_GE(CodecOneInput(s), 1) << "a sample was refused";
}

TEST(ProtocolFuzzTest, RandomBytesAreRefusedWithoutHarm) {
  testing::Mutator mutator(7);
  const size_t n = Iterations(30000);
  for (size_t i = 0; i < n; ++i) {
    std::string body(mutator.Below(96), '\0');
    for (char& c : body) c = static_cast<char>(mutator.Below(256));
    if (!body.empty() && mutator.OneIn(2)) body[0] = static_cast<char>(0x80 | mutator.Below(16));
    CodecOneInput(body);
  }
}

TEST(ProtocolFuzzTest, FramingVerdictsFollowTheEnvelopeRules) {
  testing::Mutator mutator(99);
  const std::vector<std::string> samples = SampleBodies();
  const std::vector<std::string> dictionary = {"RMA1", "RMA2", "\x01", "\x21", "\x0b",
                                               "\x2a", "\x00", "\xff", ""};
  size_t accepted = 0;
  const size_t n = Iterations(20000);
  for (size_t i = 0; i < n; ++i) {
    // A valid message, then damage to its envelope: frames added, removed, replaced or mutated.
    std::vector<std::string> frames = {std::string(proto::kProtocolHeader), "\x04"};
    for (size_t b = mutator.Below(4); b > 0; --b) frames.push_back(mutator.Pick(samples));
    for (size_t edits = mutator.Below(3); edits > 0; --edits) {
      const size_t at = mutator.Below(frames.size());
      switch (mutator.Below(5)) {
        case 0:
          frames[at] = mutator.Mutate(frames[at], dictionary);
          break;
        case 1:
          frames.erase(frames.begin() + static_cast<std::ptrdiff_t>(at));
          break;
        case 2:
          frames.insert(frames.begin() + static_cast<std::ptrdiff_t>(at), mutator.Pick(dictionary));
          break;
        case 3:  // too many bodies
          frames.resize(frames.size() + 8 + mutator.Below(4), "x");
          break;
        default:  // a frame over the limit
          frames[at] = std::string(4097 + mutator.Below(100), 'y');
          break;
      }
    }
    if (frames.empty()) continue;
    accepted += FramesOneInput(frames) ? 1 : 0;
  }
  EXPECT_GT(accepted, n / 20);
  EXPECT_LT(accepted, n);
}

}  // namespace
}  // namespace rma::fuzz
