// Test support: a blocking HTTP client (libcurl) for end-to-end tests. One call, one fresh handle;
// safe from any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace rma::testing {

struct HttpResponse {
  long status = 0;  // 0: no response (see error)
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string error;
  nlohmann::json Json() const;  // discarded value when the body is not JSON
  std::string Header(const std::string& name) const;
};

HttpResponse HttpCall(const std::string& method, const std::string& url,
                      const std::string& body = "", const std::vector<std::string>& headers = {},
                      long timeout_ms = 30000);

// The same, watching the body as it arrives: `on_data` sees each piece as curl reads it off the
// socket (a chunked answer's chunks, decoded) and returns false to stop reading, which closes the
// connection as a client that gives up does (the response's `error` then says so).
HttpResponse HttpWatch(const std::string& method, const std::string& url, const std::string& body,
                       const std::vector<std::string>& headers,
                       const std::function<bool(std::string_view)>& on_data,
                       long timeout_ms = 30000);

inline HttpResponse HttpGet(const std::string& url, long timeout_ms = 30000) {
  return HttpCall("GET", url, "", {}, timeout_ms);
}
inline HttpResponse HttpPostJson(const std::string& url, const nlohmann::json& body,
                                 long timeout_ms = 30000) {
  return HttpCall("POST", url, body.dump(), {"Content-Type: application/json"}, timeout_ms);
}

}  // namespace rma::testing
