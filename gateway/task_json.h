// JSON shapes of the HTTP API (docs/http-api.md): parsing task submissions, rendering tasks,
// turning the broker's msgpack admin documents into JSON, and the error body. Pure functions, safe
// on any thread.
#pragma once

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "protocol/limits.h"
#include "protocol/messages.h"

namespace rma::gateway {

struct SubmitLimits {
  size_t max_payload_bytes = 16u << 20;
  Duration max_timeout = Seconds(24 * 3600);
  // Bodies up to this size are parsed into a document; larger ones are scanned (below).
  size_t document_max_bytes = 256u << 10;
};

// Parses the body of POST /api/tasks into a SUBMIT (mode async). InvalidArgument names the bad
// field; ResourceExhausted says the payload is over max_payload_bytes. Unknown fields are ignored.
//
// The payload travels as JSON text (content type application/json), in one of two forms:
// - A body of at most `document_max_bytes` is parsed into a document and the payload written out
//   again compactly, object keys sorted — the bytes every earlier gateway sent.
// - A larger body never becomes a document (a 16 MiB payload would take ten times that in memory
//   and a long time on one thread): nlohmann's SAX acceptor validates it, ScanJsonObject finds the
//   top-level members, the other fields (each at most kMaxSubmitFieldBytes) are parsed on their
//   own, and the payload is the client's own text with the whitespace outside strings removed —
//   compacted inside the body's buffer, which then becomes the payload without a copy. It parses to
//   the same JSON value as the document form; only key order and number spelling may differ.
// In both forms the last of duplicate names wins, and nesting deeper than kMaxJsonDepth is refused.
Result<proto::Submit> ParseSubmitJson(std::string body, const SubmitLimits& limits, Time now);
inline constexpr size_t kMaxSubmitFieldBytes = 64u << 10;

// Where the value of one member of a JSON object sits in its text.
struct JsonSlice {
  bool present = false;
  size_t begin = 0;  // first byte of the value
  size_t end = 0;    // one past its last byte
};
// Scans `text`, which must hold one JSON object (whitespace around it allowed), without building a
// document and without recursion: checks its syntax (RFC 8259; strings without raw control
// characters and with valid escapes — UTF-8 validity is left to the caller) and a nesting depth of
// at most `max_depth`, and for each name in `wanted` finds its value (the last one when a name is
// repeated; names compared after unescaping). InvalidArgument when `text` is not such an object.
Status ScanJsonObject(std::string_view text, size_t max_depth,
                      const std::vector<std::string_view>& wanted, std::vector<JsonSlice>* found);
// Moves the JSON text in [begin, end) of *text to its front without the whitespace outside strings
// and cuts *text to it. `text` must hold valid JSON there.
void CompactJsonInPlace(std::string* text, size_t begin, size_t end);

// The task object of the HTTP API. The result is embedded as JSON when its content type is JSON, as
// a string when it is UTF-8 text, and as base64 (with "result_encoding": "base64") otherwise.
// "owner" (the account that submitted it) is shown to admin callers only.
nlohmann::json TaskJson(const proto::TaskView& task, bool with_result = true,
                        bool with_owner = false);

// Any msgpack value as JSON (binary as base64 strings, non-string keys stringified).
nlohmann::json MsgpackToJson(const msgpack::object& o);

// {"error": message, "code": code, ...extra}.
nlohmann::json ErrorJson(std::string_view message, std::string_view code);

// Whether JSON text nests arrays and objects at most `max_depth` deep (strings are skipped).
// Checked before parsing untrusted JSON: nlohmann's serialiser recurses once per level, so a body
// of a few hundred thousand '[' would otherwise overflow the stack when the value is dumped.
bool JsonDepthWithin(std::string_view text, size_t max_depth);
inline constexpr size_t kMaxJsonDepth = 64;

std::string Base64Encode(std::string_view bytes);
bool IsValidUtf8(std::string_view s);

}  // namespace rma::gateway
