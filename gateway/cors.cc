// See cors.h.
#include "gateway/cors.h"

#include <algorithm>
#include <cctype>

namespace rma::gateway {

namespace {

constexpr std::string_view kExposed =
    "Location, Retry-After, WWW-Authenticate, X-RMA-Task-Id, X-RMA-Worker-Id";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool GrantedHeader(const std::string& lower) {
  static constexpr std::string_view kKnown[] = {
      "accept", "accept-language", "content-type", "authorization", "x-api-key", "x-rma-timeout"};
  for (std::string_view k : kKnown) {
    if (lower == k) return true;
  }
  if (lower.size() <= 2 || lower.rfind("x-", 0) != 0) return false;
  return std::all_of(lower.begin(), lower.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

}  // namespace

CorsPolicy::CorsPolicy(std::vector<std::string> origins) {
  for (std::string& o : origins) {
    while (!o.empty() && o.back() == '/') o.pop_back();
    if (o == "*") {
      any_ = true;
    } else if (!o.empty()) {
      origins_.push_back(Lower(o));
    }
  }
}

bool CorsPolicy::Allows(std::string_view origin) const {
  if (origin.empty()) return false;
  if (any_) return true;
  std::string lower = Lower(origin);
  return std::find(origins_.begin(), origins_.end(), lower) != origins_.end();
}

HeaderList CorsPolicy::ResponseHeaders(std::string_view origin) const {
  if (!Allows(origin)) return {};
  return {{"Access-Control-Allow-Origin", any_ ? "*" : std::string(origin)},
          {"Access-Control-Expose-Headers", std::string(kExposed)},
          {"Vary", "Origin"}};
}

std::optional<HeaderList> CorsPolicy::PreflightHeaders(
    std::string_view origin, std::string_view requested_method, std::string_view requested_headers,
    const std::vector<std::string>& allowed_methods) const {
  if (!Allows(origin)) return std::nullopt;
  if (std::find(allowed_methods.begin(), allowed_methods.end(), requested_method) ==
      allowed_methods.end()) {
    return std::nullopt;
  }
  std::string methods;
  for (const std::string& m : allowed_methods) {
    if (methods.find(m) != std::string::npos) continue;
    if (!methods.empty()) methods += ", ";
    methods += m;
  }
  std::string granted;
  size_t pos = 0;
  while (pos < requested_headers.size()) {
    size_t comma = requested_headers.find(',', pos);
    if (comma == std::string_view::npos) comma = requested_headers.size();
    std::string name = Lower(requested_headers.substr(pos, comma - pos));
    size_t first = name.find_first_not_of(" \t");
    name = first == std::string::npos
               ? std::string()
               : name.substr(first, name.find_last_not_of(" \t") + 1 - first);
    if (!name.empty() && GrantedHeader(name)) {
      if (!granted.empty()) granted += ", ";
      granted += name;
    }
    pos = comma + 1;
  }
  HeaderList h = {{"Access-Control-Allow-Origin", any_ ? "*" : std::string(origin)},
                  {"Access-Control-Allow-Methods", methods},
                  {"Access-Control-Max-Age", "600"},
                  {"Vary", "Origin"}};
  if (!granted.empty()) h.emplace_back("Access-Control-Allow-Headers", granted);
  return h;
}

}  // namespace rma::gateway
