// The OpenAI-compatible front door's pure parts (docs/http-api.md, "OpenAI-compatible API"): what
// a request must hold, OpenAI's error shape, the usage an answer reports, the model list, and the
// per-model metrics. The routes themselves are in api_openai.cc. Pure functions are safe on any
// thread; ModelMetrics locks inside.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/mutex.h"
#include "common/status.h"
#include "gateway/http_wire.h"

namespace rma::gateway {

inline constexpr size_t kMaxModelNameBytes = 256;

struct OpenAiRequest {
  std::string model;
  bool stream = false;
};

// The fields the gateway reads from a request body; InvalidArgument with OpenAI-style wording when
// the body is not a JSON object with a non-empty string `model` (at most kMaxModelNameBytes).
// The body itself travels to the backend unchanged.
Result<OpenAiRequest> ParseOpenAiRequest(std::string_view body);

// {"error": {"message", "type", "param": null, "code"}} with `status`. `type` follows OpenAI:
// invalid_request_error (4xx), authentication_error (401), permission_error (403), rate_limit_error
// (429), server_error (5xx); `code` is the gateway's (null when empty).
HttpReply OpenAiErrorReply(int status, std::string_view message, std::string_view code);
// One of the gateway's own JSON error answers ({"error": "...", "code": "..."}) in OpenAI's shape,
// with the same status and headers; unknown model (404 not_found) says `model_not_found`.
HttpReply ToOpenAiError(HttpReply reply);

struct Usage {
  uint64_t prompt_tokens = 0;
  uint64_t completion_tokens = 0;
};
// The usage an answer reports: the `usage` object of a JSON body, or of the last event carrying
// one in a `text/event-stream` (OpenAI sends it in the final chunk with
// stream_options.include_usage). Only the tail of a stream is read.
std::optional<Usage> UsageOf(std::string_view body, bool event_stream);

// GET /v1/models from the broker's `models` admin document
// ({"models": [{"id", "created", ...}]}): {"object": "list", "data": [{"id", "object": "model",
// "created", "owned_by": "rma"}]}.
nlohmann::json ModelList(const nlohmann::json& broker_doc);

// Requests, tokens and time to first byte per model, for /metrics. At most kMaxModels distinct
// labels (more are counted as "other"): model names come from clients.
class ModelMetrics {
 public:
  static constexpr size_t kMaxModels = 64;
  void Record(std::string_view model, int status, std::optional<Duration> first_byte,
              std::optional<Usage> usage);
  // Appends rma_gateway_openai_requests_total, rma_gateway_openai_tokens_total and
  // rma_gateway_openai_first_byte_seconds.
  void Render(std::string* out) const;

 private:
  struct PerModel {
    std::map<int, uint64_t> requests;  // by status
    uint64_t prompt_tokens = 0;
    uint64_t completion_tokens = 0;
    std::vector<uint64_t> first_byte_buckets;  // per bound, plus +Inf; not cumulative
    double first_byte_sum_s = 0;
    uint64_t first_byte_count = 0;
  };
  mutable Mutex mu_;
  std::map<std::string, PerModel, std::less<>> models_ RMA_GUARDED_BY(mu_);
};

}  // namespace rma::gateway
