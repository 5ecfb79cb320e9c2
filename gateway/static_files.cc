// See static_files.h.
#include "gateway/static_files.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "gateway/task_json.h"

namespace rma::gateway {

namespace {

// Hashed names never change content, so caches may keep them as long as they like; index.html names
// the current hashes and must be revalidated on every load so a new gateway's bundle shows at once.
constexpr std::string_view kImmutable = "public, max-age=31536000, immutable";
constexpr std::string_view kRevalidate = "no-cache";
constexpr std::string_view kAssetsPrefix = "/assets/";

// The page loads only its own scripts and styles and talks only to its own gateway; nothing may
// come from another host, and no other site may frame it.
constexpr std::string_view kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view PathOnly(std::string_view path) {
  size_t q = path.find_first_of("?#");
  return q == std::string_view::npos ? path : path.substr(0, q);
}

// The entity tag of the gzip representation: a different representation needs a different strong
// tag.
std::string GzipEtag(std::string_view etag) {
  std::string tag(etag);
  if (tag.size() >= 2 && tag.back() == '"') tag.insert(tag.size() - 1, "-gz");
  return tag;
}

StaticReply JsonError(int status, std::string_view message, std::string_view code) {
  StaticReply r;
  r.status = status;
  r.content_type = "application/json";
  r.body = ErrorJson(message, code).dump();
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

}  // namespace

bool EtagMatches(std::string_view if_none_match, std::string_view etag) {
  std::string_view list = Trim(if_none_match);
  if (list == "*") return true;
  auto opaque = [](std::string_view tag) {
    tag = Trim(tag);
    if (tag.substr(0, 2) == "W/") tag.remove_prefix(2);
    return tag;
  };
  const std::string_view want = opaque(etag);
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (opaque(list.substr(0, comma)) == want && !want.empty()) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

bool AcceptsGzip(std::string_view accept_encoding) {
  std::string_view list = accept_encoding;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    size_t semi = item.find(';');
    std::string_view coding = Trim(item.substr(0, semi));
    if (!EqualsIgnoreCase(coding, "gzip") && !EqualsIgnoreCase(coding, "x-gzip") && coding != "*") {
      continue;
    }
    // "gzip;q=0" means "not gzip"; any other weight (or none) accepts it.
    bool refused = false;
    if (semi != std::string_view::npos) {
      std::string_view params = item.substr(semi + 1);
      size_t q = params.find("q=");
      if (q == std::string_view::npos) q = params.find("Q=");
      if (q != std::string_view::npos) {
        std::string_view value = Trim(params.substr(q + 2));
        double weight = 1;
        auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), weight);
        refused = ec == std::errc() && weight <= 0;
      }
    }
    if (!refused) return true;
  }
  return false;
}

StaticFiles::StaticFiles(std::span<const EmbeddedFile> files, std::string not_built_reason)
    : not_built_reason_(std::move(not_built_reason)) {
  for (const EmbeddedFile& f : files) by_path_.emplace(f.path, &f);
}

const StaticFiles& StaticFiles::Dashboard() {
  static const StaticFiles dashboard(DashboardFiles(), std::string(DashboardNotBuiltReason()));
  return dashboard;
}

bool StaticFiles::Handles(std::string_view path) {
  path = PathOnly(path);
  return path == "/" || path == "/index.html" ||
         path.substr(0, kAssetsPrefix.size()) == kAssetsPrefix;
}

StaticReply StaticFiles::Serve(const StaticRequest& request) const {
  std::string_view path = PathOnly(request.path);
  if (!built()) {
    return JsonError(
        404,
        "the dashboard is not part of this gateway: " +
            (not_built_reason_.empty() ? std::string("it was not built") : not_built_reason_) +
            "; the admin API under /api/admin/ works as usual",
        "dashboard_not_built");
  }
  if (path == "/") path = "/index.html";
  auto it = by_path_.find(path);
  if (it == by_path_.end()) {
    return JsonError(404, "no dashboard file " + std::string(path), "not_found");
  }
  const EmbeddedFile& file = *it->second;
  const bool gzip = !file.gzip_body.empty() && AcceptsGzip(request.accept_encoding);
  const std::string etag = gzip ? GzipEtag(file.etag) : std::string(file.etag);

  StaticReply r;
  r.headers.emplace_back("ETag", etag);
  r.headers.emplace_back("Cache-Control", path.substr(0, kAssetsPrefix.size()) == kAssetsPrefix
                                              ? kImmutable
                                              : kRevalidate);
  if (!file.gzip_body.empty()) r.headers.emplace_back("Vary", "Accept-Encoding");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (file.content_type.substr(0, 9) == "text/html") {
    r.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
  }
  if (EtagMatches(request.if_none_match, etag)) {
    r.status = 304;
    r.content_type.clear();  // a 304 describes the cached copy: no body, no type
    return r;
  }
  r.status = 200;
  r.content_type = std::string(file.content_type);
  if (gzip) r.headers.emplace_back("Content-Encoding", "gzip");
  if (!request.head) r.body = std::string(gzip ? file.gzip_body : file.body);
  return r;
}

}  // namespace rma::gateway
