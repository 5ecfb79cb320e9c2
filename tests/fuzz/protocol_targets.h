// The protocol's fuzz targets: what one untrusted input does to the msgpack codec and to the
// ZeroMQ framing. Each function runs one input and aborts (with a message on stderr) when a
// property does not hold; a crash, a hang or a sanitizer report is a failure too. The same
// functions are driven by the bounded mutation tests in ctest (protocol_fuzz_test.cc) and, in a
// clang build with -DRMA_FUZZERS=ON, by libFuzzer (fuzz_*_main.cc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rma::fuzz {

// Decodes `body` as every message type. Whatever a decoder accepts must encode again to a body
// the same decoder accepts and that encodes to the same bytes (decode and encode agree), and must
// respect the limits (no payload over max_payload_bytes, no name over max_string_bytes).
// Returns how many decoders accepted it.
int CodecOneInput(std::string_view body);

// Sends `frames` as one multipart message through a ROUTER/DEALER pair (inproc) and reads it
// with ReceiveMessage. The verdict must match the envelope rules of docs/protocol.md section 3
// computed independently here (header, one known command byte, at most max_bodies bodies), the
// bodies must come out unchanged, and the next message must still parse. Returns whether the
// message was accepted.
bool FramesOneInput(const std::vector<std::string>& frames);

// Splits a flat fuzzer input into frames: each frame is one length byte (0..255, times
// `scale` for the first frames) followed by that many bytes.
std::vector<std::string> SplitFrames(std::string_view data);

// Valid sample bodies of every message type, and words that mean something to msgpack and to the
// decoders (type bytes, field names), to start mutations from.
std::vector<std::string> SampleBodies();
std::vector<std::string> CodecDictionary();

}  // namespace rma::fuzz
