// CORS for a configured list of origins, so a web front end on another origin can call the API.
// API keys travel in headers, never cookies, so credentials mode is never needed. Immutable after
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
  std::optional<HeaderList> PreflightHeaders(std::string_view origin,
                                             std::string_view requested_method,
                                             std::string_view requested_headers,
                                             const std::vector<std::string>& allowed_methods) const;

 private:
  bool any_ = false;
  std::vector<std::string> origins_;
};

}  // namespace rma::gateway
