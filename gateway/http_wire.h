// The parts of HTTP/1.1 the gateway handles itself instead of leaving them to Pistache: the bytes
// of every response it writes (Pistache 0.0.5's ResponseWriter cannot safely be used from another
// thread, see gateway.cc), the raw request target (Pistache's parsed query loses order and repeated
// names), keep-alive decisions and query parameters. Pure functions, safe on any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace rma::gateway {

// One HTTP response, before serialisation.
struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, in order
};

// The head of a streamed answer (chunked transfer encoding): status line, Content-Type, the extra
// headers (unsafe ones left out, as below), Connection, Transfer-Encoding. A status outside
// 200..599 becomes 500.
std::string SerializeStreamHead(const HttpReply& head, bool keep_alive);
// Appends `data` to *out as one chunk of a chunked body (nothing for empty data: the empty chunk
// ends a body, "0\r\n\r\n").
void AppendChunk(std::string_view data, std::string* out);

// "OK", "Not Found", ...; "Unknown" for codes without a standard phrase.
std::string_view ReasonPhrase(int status);

// The complete HTTP/1.1 response: status line, Content-Type (when not empty), the extra headers,
// Connection, Content-Length and, unless `head_only`, the body (a HEAD answer keeps the length the
// GET would have). Headers whose name or value holds CR, LF or NUL are left out, so a value that
// came from a backend can never split the response.
std::string SerializeResponse(const HttpReply& reply, bool keep_alive, bool head_only);

// The head of a request as the client sent it: request line and header fields, names and values
// exactly as written (Pistache keeps only its own typed form of well-known headers).
struct RequestHead {
  std::string method;
  std::string target;
  bool http11 = true;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, values trimmed

  // The first value of a header (name compared case-insensitively).
  std::optional<std::string_view> Header(std::string_view name) const;
};

// Parses "METHOD SP target SP HTTP/1.x CRLF (name: value CRLF)* CRLF" (bare LF tolerated; empty
// lines before the request line skipped). nullopt on anything malformed or over 200 header fields,
// and on a control character other than a tab in a header value: a bare CR would reach a backend
// (forwarded X- headers) or a log as a line break.
std::optional<RequestHead> ParseRequestHead(std::string_view head);

// How a request's body is delimited (RFC 9112, 6). Only what the gateway can frame without doubt
// is accepted, so that it and any proxy in front of it never disagree about where a request ends
// (request smuggling): Content-Length headers must all be the same run of digits; Transfer-Encoding
// must be exactly "chunked", once, and never beside a Content-Length.
struct BodyFraming {
  enum class Kind { kNone, kLength, kChunked };
  Kind kind = Kind::kNone;
  uint64_t length = 0;  // kLength
};
struct FramingError {
  int status;  // 400, or 501 for a transfer coding the gateway does not implement
  std::string message;
};
// The framing of a request, or why it cannot be framed.
std::variant<BodyFraming, FramingError> FramingOf(const RequestHead& head);

// Decodes a chunked body (RFC 9112, 7.1) as it arrives, in pieces of any size. Chunk extensions
// and trailer fields are read and dropped. Strict: every line ends with CRLF, chunk sizes are at
// most 16 hex digits, extension and trailer bytes are bounded.
class ChunkedDecoder {
 public:
  enum class State { kMore, kDone, kError, kTooLarge };
  // Appends the data of the chunks in `in` to `body`, never letting it exceed `max_body`. Sets
  // *consumed to the bytes of `in` that belong to the body (all of them unless kDone, when the rest
  // belongs to whatever follows the request).
  State Feed(std::string_view in, std::string* body, size_t max_body, size_t* consumed);
  const std::string& error() const { return error_; }

 private:
  enum class Step { kSize, kExtension, kSizeLf, kData, kDataCr, kDataLf, kTrailer, kTrailerLf };
  State Fail(std::string message);
  Step step_ = Step::kSize;
  uint64_t size_ = 0;
  size_t digits_ = 0;
  uint64_t remaining_ = 0;
  size_t line_bytes_ = 0;     // extension or trailer line so far
  size_t trailer_bytes_ = 0;  // all trailer lines
  std::string error_;
};

// `s` made safe for a log line: control characters, DEL and backslashes become escapes
// (\n, \r, \xNN ...), and anything past `max` bytes is cut (with "..." appended). Peer-supplied
// strings go through it before they are logged, so nobody can forge a log line.
std::string EscapeForLog(std::string_view s, size_t max = 256);

// Where the head ends in `bytes` (just after the blank line), or npos. `from` is where to start
// looking (so a head arriving in pieces is scanned once).
size_t FindHeadEnd(std::string_view bytes, size_t from);

// Whether the connection stays open after this response: HTTP/1.1 unless "Connection: close",
// HTTP/1.0 only with "Connection: keep-alive". `connection` is the header's value ("" if absent).
bool KeepAlive(bool http11, std::string_view connection);

// An origin-form request target ("/a/b?x=1") split at the first '?'.
struct RequestTarget {
  std::string path;   // "/a/b", as sent (not percent-decoded)
  std::string query;  // "x=1", without '?', as sent
};
// Fails on anything but origin form (absolute URIs, "*", control characters, > 8 KiB).
std::optional<RequestTarget> SplitTarget(std::string_view target);

// Non-empty segments of a path ("/api//tasks/" -> {"api", "tasks"}).
std::vector<std::string_view> PathSegments(std::string_view path);

// Percent-decoding; '+' becomes a space when `plus_as_space` (query strings). Fails on bad escapes.
std::optional<std::string> PercentDecode(std::string_view s, bool plus_as_space);

// Why a service call's path may not travel to a backend, or nullopt when it may. Refused: bad
// percent escapes; "." and ".." segments, written plainly or encoded ("%2e%2e", ".%2E"); encoded
// "/" (%2F) and backslash (%5C), which a backend that decodes before splitting would read as
// segment separators ("..%2F" climbs out of its base path); a raw backslash; NUL, raw or encoded.
std::optional<std::string> ServicePathProblem(std::string_view path);

// The decoded value of the first `name=value` pair in a raw query; "" for a bare `name`; nullopt
// when absent or badly encoded.
std::optional<std::string> QueryParam(std::string_view query, std::string_view name);

// Whether a Content-Type names JSON: "application/json", any case, parameters (charset) allowed.
bool IsJsonMediaType(std::string_view content_type);

// Case-insensitive ASCII comparison, for header names.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace rma::gateway
