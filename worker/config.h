// The worker's configuration file and service flags: parsing and validation only (pure; main.cc
// merges the result with the command line, where flags and RMA_* variables win over the file).
//
// The file is a JSON object; every key is optional and unknown keys are errors, so a typo never
// goes unnoticed. docs/configuration.md lists the keys. Example:
//   {"broker": "tcp://pool.example.org:5555", "slots": 2,
//    "services": {"rag": "http://127.0.0.1:8102",
//                 "ocr": {"handler": "http://127.0.0.1:8103/v1", "health": "/healthz"},
//                 "wc": {"handler": "exec:wc -c", "content_type": "text/plain"},
//                 "llm": {"handler": "http://127.0.0.1:11434", "models": ["llama3:8b"]}}}
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "worker/handler.h"

namespace rma::worker {

// One service: its name, its handler spec, and per-service settings that override the defaults.
struct ServiceConfig {
  std::string name;
  std::string handler;
  std::optional<std::string> health;  // http: health path
  std::optional<int64_t> connect_timeout_ms;
  std::optional<int64_t> health_timeout_ms;
  std::optional<int64_t> timeout_ms;  // when a task carries no timeout
  std::optional<int64_t> max_output_bytes;
  std::optional<std::string> content_type;  // exec: content type of stdout
  std::optional<int64_t> kill_grace_ms;
  std::optional<bool> stream;  // exec: stdout streams as written (default: for text/event-stream)
  // The models it serves (at most 256 model names, protocol/names.h); empty: an http backend is
  // asked (GET /v1/models), other handlers serve no named model.
  std::vector<std::string> models;

  // `defaults` with this service's overrides applied.
  HandlerOptions Resolve(HandlerOptions defaults) const;
};

struct WorkerConfig {
  std::optional<std::string> broker;
  std::optional<std::string> name;
  std::optional<std::string> worker_id;
  std::optional<std::string> data_dir;
  std::optional<std::string> token;
  std::optional<std::string> broker_key;   // --broker-key: Z85, or a file holding it
  std::optional<std::string> enrol_token;  // --enrol: a one-time enrolment token (CURVE only)
  std::optional<std::string> simulate;
  std::optional<std::string> worker_type;
  std::optional<std::string> generic;
  std::optional<std::string> log_level;
  std::optional<uint32_t> slots;
  std::optional<int64_t> heartbeat_ms;
  std::optional<int64_t> drain_grace_ms;
  std::optional<int64_t> health_interval_ms;
  std::optional<int64_t> health_timeout_ms;
  std::optional<uint32_t> health_failures;
  std::optional<int64_t> connect_timeout_ms;
  std::optional<int64_t> max_output_bytes;
  std::map<std::string, std::string> labels;
  std::vector<ServiceConfig> services;
};

// InvalidArgument naming the key ("services.rag.health: must start with '/'") for anything wrong.
Result<WorkerConfig> ParseWorkerConfig(std::string_view json_text);
// Reads (at most 1 MiB) and parses a file.
Result<WorkerConfig> LoadWorkerConfig(const std::string& path);

// RMA_SERVICES: entries separated by commas. A comma splits only where the next entry starts
// (NAME=builtin:, NAME=http://, NAME=https://, NAME=exec:), so commands may contain commas.
std::vector<std::string> SplitServiceList(std::string_view list);
// "NAME=HANDLER" from --service / RMA_SERVICES.
Result<ServiceConfig> ParseServiceFlag(std::string_view flag);
// "NAME=MODEL" from --model: service NAME serves MODEL (a model name, protocol/names.h).
Result<std::pair<std::string, std::string>> ParseModelFlag(std::string_view flag);
// Adds `model` to the service's models; InvalidArgument for a bad name or one model too many.
Status AddModel(ServiceConfig* service, const std::string& model);
// Service names: 1-64 characters from [A-Za-z0-9._-], starting with a letter or digit.
Status CheckServiceName(std::string_view name);
// An enrolment token (--enrol, the file's enrol_token): 1 to 128 printable ASCII characters
// without spaces, as the pool's operator hands them out (rma_enrol_ and hex digits). The error
// never quotes the token: it is a secret until used.
Status CheckEnrolToken(std::string_view token);
// "KEY=VALUE" from --label.
Result<std::pair<std::string, std::string>> ParseLabel(std::string_view flag);

}  // namespace rma::worker
