// The parts of HTTP/1.1 the gateway handles itself instead of leaving them to Pistache: the bytes
// of every response it writes (Pistache 0.0.5's ResponseWriter cannot safely be used from another
// thread, see gateway.cc), the raw request target (Pistache's parsed query loses order and repeated
// names), keep-alive decisions and query parameters. Pure functions, safe on any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rma::gateway {

// One HTTP response, before serialisation.
struct HttpReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, in order
};

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
// lines before the request line skipped). nullopt on anything malformed or over 200 header fields.
std::optional<RequestHead> ParseRequestHead(std::string_view head);

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

// The decoded value of the first `name=value` pair in a raw query; "" for a bare `name`; nullopt
// when absent or badly encoded.
std::optional<std::string> QueryParam(std::string_view query, std::string_view name);

// Case-insensitive ASCII comparison, for header names.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

}  // namespace rma::gateway
