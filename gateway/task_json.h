// JSON shapes of the HTTP API (docs/http-api.md): parsing task submissions, rendering tasks,
// turning the broker's msgpack admin documents into JSON, and the error body. Pure functions, safe
// on any thread.
#pragma once

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/status.h"
#include "protocol/limits.h"
#include "protocol/messages.h"

namespace rma::gateway {

struct SubmitLimits {
  size_t max_payload_bytes = 16u << 20;
  Duration max_timeout = Seconds(24 * 3600);
};

// Parses the body of POST /api/tasks into a SUBMIT (mode async). InvalidArgument names the bad
// field.
Result<proto::Submit> ParseSubmitJson(std::string_view body, const SubmitLimits& limits, Time now);

// The task object of the HTTP API. The result is embedded as JSON when its content type is JSON, as
// a string when it is UTF-8 text, and as base64 (with "result_encoding": "base64") otherwise.
nlohmann::json TaskJson(const proto::TaskView& task, bool with_result = true);

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
