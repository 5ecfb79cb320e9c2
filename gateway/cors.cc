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

// "host", "host:port", "[v6]:port" split into a lower-case host and the port text ("" if none).
// False when malformed.
bool SplitHostPort(std::string_view s, std::string* host, std::string_view* port) {
  if (s.empty()) return false;
  std::string_view h = s;
  *port = {};
  if (s.front() == '[') {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return false;
    h = s.substr(0, close + 1);
    std::string_view rest = s.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return false;
      *port = rest.substr(1);
    }
  } else {
    size_t colon = s.find(':');
    if (colon != std::string_view::npos) {
      h = s.substr(0, colon);
      *port = s.substr(colon + 1);
    }
  }
  if (h.empty()) return false;
  if (!port->empty() && port->find_first_not_of("0123456789") != std::string_view::npos) {
    return false;
  }
  for (char c : h) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f || c == '/' || c == '@' || c == '?' || c == '#') return false;
  }
  *host = Lower(h);
  return true;
}

// "80" and "080" and "" (with default "80") are the same port.
bool SamePort(std::string_view a, std::string_view b, std::string_view default_port) {
  if (a.empty()) a = default_port;
  if (b.empty()) b = default_port;
  while (a.size() > 1 && a.front() == '0') a.remove_prefix(1);
  while (b.size() > 1 && b.front() == '0') b.remove_prefix(1);
  return a == b;
}

}  // namespace

bool SameOrigin(std::string_view origin, std::string_view host) {
  std::string_view default_port;
  if (origin.rfind("http://", 0) == 0) {
    origin.remove_prefix(7);
    default_port = "80";
  } else if (origin.rfind("https://", 0) == 0) {
    origin.remove_prefix(8);
    default_port = "443";
  } else {
    return false;
  }
  std::string origin_host, request_host;
  std::string_view origin_port, request_port;
  if (!SplitHostPort(origin, &origin_host, &origin_port)) return false;
  if (!SplitHostPort(host, &request_host, &request_port)) return false;
  return origin_host == request_host && SamePort(origin_port, request_port, default_port);
}

std::optional<std::string> CorsPolicy::CrossSiteRefusal(std::optional<std::string_view> origin,
                                                        std::optional<std::string_view> fetch_site,
                                                        std::string_view host) const {
  const bool allowed = origin && Allows(*origin);
  if (origin && !allowed && !SameOrigin(*origin, host)) {
    return "cross-origin request refused: origin '" + std::string(origin->substr(0, 128)) +
           "' is not allowed to change anything here (see --cors-origin)";
  }
  if (fetch_site && Lower(*fetch_site) == "cross-site" && !allowed) {
    return std::string(
        "cross-site request refused (Sec-Fetch-Site: cross-site without an allowed Origin)");
  }
  return std::nullopt;
}

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
