// CORS for a configured list of origins, so a web front end on another origin can call the API,
// and the refusal of state-changing requests that come from any other site (CSRF: a page elsewhere
// making the visitor's browser submit tasks or drain workers on a gateway it can reach). API keys
// travel in headers, never cookies, so credentials mode is never needed. Immutable after
// construction: safe on any thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace rma::gateway {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

class CorsPolicy {
 public:
  CorsPolicy() = default;
  // Origins as browsers send them ("https://app.example.org"); "*" allows every origin.
  explicit CorsPolicy(std::vector<std::string> origins);

  bool enabled() const { return any_ || !origins_.empty(); }
  bool Allows(std::string_view origin) const;

  // Headers for the answer to an ordinary cross-origin request; empty when `origin` is empty or not
  // allowed (the browser then withholds the answer from the page).
  HeaderList ResponseHeaders(std::string_view origin) const;

  // The answer to a preflight (OPTIONS with Access-Control-Request-Method): nullopt when the origin
  // is not allowed or the method is not in `allowed_methods`. Requested headers are granted when
  // the API reads them (content type, keys, timeouts) or they are X- headers a service call
  // forwards.
  // Why a state-changing request (any method but GET, HEAD, OPTIONS) must be refused, or nullopt
  // when it may go on. Refused: an Origin header that is neither allowed here nor the gateway's own
  // origin (SameOrigin with the Host header; "null" is never either), and Sec-Fetch-Site:
  // cross-site without an allowed Origin. Requests without these headers (curl, rmactl, scripts)
  // are not browsers' cross-site requests and pass.
  std::optional<std::string> CrossSiteRefusal(std::optional<std::string_view> origin,
                                              std::optional<std::string_view> fetch_site,
                                              std::string_view host) const;

  std::optional<HeaderList> PreflightHeaders(std::string_view origin,
                                             std::string_view requested_method,
                                             std::string_view requested_headers,
                                             const std::vector<std::string>& allowed_methods) const;

 private:
  bool any_ = false;
  std::vector<std::string> origins_;
};

// Whether `origin` ("https://pool.example.org") names the host and port a request was sent to, as
// its Host header says ("pool.example.org", "127.0.0.1:8080"). The scheme must be http or https
// and is not compared (behind a TLS proxy the gateway cannot see it); a port left out means the
// default port of the origin's scheme on both sides. Host names compare case-insensitively.
bool SameOrigin(std::string_view origin, std::string_view host);

}  // namespace rma::gateway
