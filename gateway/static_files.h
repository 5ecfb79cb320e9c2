// StaticFiles: the dashboard's files (the Vite bundle from dashboard/), embedded into rma-gateway
// at build time and answered from memory — no file system access per request, because handlers run
// on Pistache's reactor threads. It decides everything HTTP about a static file: which path maps to
// which file, content type, cache policy (hashed /assets/... cached for a year as immutable,
// index.html revalidated every time), ETag and 304, gzip when the client takes it, HEAD, and a
// plain JSON 404 when the gateway was built without the dashboard.
//
// Immutable after construction: Serve() is const and safe from any number of reactor threads at
// once.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace rma::gateway {

// One embedded file. The table is generated (dashboard/embed_assets.cmake) into the build tree.
struct EmbeddedFile {
  std::string_view path;          // URL path: "/index.html", "/assets/index-3f2a1b9c.js"
  std::string_view content_type;  // "text/html; charset=utf-8", ...
  std::string_view etag;          // strong validator, quoted: "\"9f86d081884c7d659a2f\""
  std::string_view body;
  std::string_view gzip_body;  // empty when the file is not worth compressing
};

// The generated table; empty when the dashboard was not built into this gateway.
std::span<const EmbeddedFile> DashboardFiles();
// Why the table is empty (e.g. "built with -DRMA_BUILD_DASHBOARD=OFF"); empty when it is not.
std::string_view DashboardNotBuiltReason();

struct StaticRequest {
  std::string_view path;  // as received; a query string is ignored
  bool head = false;
  std::string_view if_none_match;    // request header value, "" when absent
  std::string_view accept_encoding;  // request header value, "" when absent
};

struct StaticReply {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type
};

class StaticFiles {
 public:
  // `not_built_reason` is what a request gets told when `files` is empty.
  StaticFiles(std::span<const EmbeddedFile> files, std::string not_built_reason);

  // The dashboard compiled into this binary.
  static const StaticFiles& Dashboard();

  // Whether the gateway should route `path` here: "/", "/index.html" and anything under "/assets/".
  // Every other path belongs to the API.
  static bool Handles(std::string_view path);

  // Answers a GET or HEAD of `request.path`.
  StaticReply Serve(const StaticRequest& request) const;

  bool built() const { return !by_path_.empty(); }

 private:
  std::unordered_map<std::string_view, const EmbeddedFile*> by_path_;
  std::string not_built_reason_;
};

// Helpers, exposed for tests.
// Whether an If-None-Match value (a list of entity tags, or "*") matches `etag` (weak comparison,
// as RFC 9110 asks for If-None-Match).
bool EtagMatches(std::string_view if_none_match, std::string_view etag);
// Whether an Accept-Encoding value allows gzip (a "gzip" or "*" coding without q=0).
bool AcceptsGzip(std::string_view accept_encoding);

}  // namespace rma::gateway
