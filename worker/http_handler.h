// The http handler: runs tasks against a local HTTP backend with libcurl.
//
// Spec: `http://HOST[:PORT][/BASE-PATH][#/HEALTH-PATH]` (https too). Requests go to BASE-PATH on
// the backend; the health probe is a GET of HEALTH-PATH from the server root (default /health,
// or HandlerOptions::health_path). Any 2xx answer to the probe is healthy.
//
// A synchronous service call carries the caller's request (method, path, query, forwarded
// headers); it is replayed as BASE-PATH + path + "?" + query with the payload as body, and the
// backend's status, content type and body come back as the result, whatever the status (a 404 or
// 500 from the backend is a completed task; the gateway relays it). An asynchronous task has no
// request: its payload is POSTed to BASE-PATH (or "/") with the payload's content type; there a
// non-2xx answer is a task error (5xx, 408 and 429 retryable, other 4xx not).
//
// Connecting may take HandlerOptions::connect_timeout, the whole exchange the task's timeout. A
// backend that is down, closes the connection or is too slow is a clear, retryable task error,
// never a hang; a cancel aborts the transfer at once (curl_multi_wakeup from the CancelToken).
// Every request also carries X-RMA-Task-Id and X-RMA-Attempt. Thread-safe: each call uses its own
// curl handles.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "worker/handler.h"

namespace rma::worker {

struct HttpTarget {
  std::string scheme;       // "http" or "https"
  std::string authority;    // "127.0.0.1:8102", "[::1]:8102", "localhost"
  std::string base_path;    // "" or "/v1" (never a trailing slash)
  std::string health_path;  // from the spec's fragment; "" when it has none
  std::string Origin() const { return scheme + "://" + authority; }
  std::string BaseUrl() const { return Origin() + base_path; }
};

// Parses and validates a spec (no user info, no query, no dot segments, a port in 1..65535).
Result<HttpTarget> ParseHttpSpec(std::string_view spec);

// The request a task turns into, before libcurl sees it.
struct OutgoingRequest {
  std::string method;
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  bool relay_status = true;          // false for asynchronous tasks (non-2xx is an error)
};

// Builds the backend request of `task` (pure; InvalidArgument for a method, path, query or header
// that cannot be sent safely: control characters, dot segments, header injection).
Result<OutgoingRequest> BuildRequest(const HttpTarget& target, const proto::TaskAssignment& task);

// Model discovery (Handler::ListModels). The URL of the backend's model list: <base>/v1/models, or
// <base>/models when the base path already ends in /v1 (a spec written as http://host:port/v1).
std::string ModelsUrl(const HttpTarget& target);
// The model ids of an OpenAI list, {"object": "list", "data": [{"id": "m1", ...}, ...]}: sorted,
// without duplicates, at most proto::kMaxModelsPerService (the first ones listed), ids that are no
// model name left out. InvalidArgument when the body is not such a list.
Result<std::vector<std::string>> ParseModelList(std::string_view body);

Result<std::shared_ptr<Handler>> MakeHttpHandler(const std::string& spec,
                                                 const HandlerOptions& options);

}  // namespace rma::worker
