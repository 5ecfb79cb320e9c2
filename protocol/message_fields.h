// The field table of every protocol body, written once: docs/protocol.md's tables in code.
//
// Fields(v, m) lists the fields of message m in wire order with their key, type and rule. The
// encoder (FieldWriter) and the decoder (FieldReader) in codec.cc both walk these lists, so a field
// is added, renamed or bounded in exactly one place. `m` is const when encoding and mutable when
// decoding; Validate(m) holds the rules that span several fields or need a default filled in.
// Internal to protocol/.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <type_traits>

#include "common/status.h"
#include "protocol/admin_reply.h"
#include "protocol/messages.h"
#include "protocol/names.h"

namespace rma::proto::internal {

// M is T or const T (the encoder walks const messages).
template <typename M, typename T>
concept Is = std::is_same_v<std::remove_const_t<M>, T>;

// How one field is decoded, checked and encoded.
struct FieldRule {
  bool required = false;      // decoding fails without it; encoding always writes it
  bool always = false;        // encoding writes it even when it holds its default
  bool default_true = false;  // booleans whose default is true (written only when false)
  bool non_negative = false;  // floats
  uint64_t min = 0;           // unsigned integers: inclusive bounds
  uint64_t max = std::numeric_limits<uint64_t>::max();
  size_t max_bytes = 0;  // str: 0 = Limits::max_string_bytes; bin: 0 = Limits::max_payload_bytes
  Status (*check)(std::string_view) = nullptr;  // str, str list items: a further rule (names)
  size_t max_items = 0;                         // str list: 0 = Limits::max_array
};

inline constexpr uint32_t kMaxPriority = 9;
inline constexpr uint32_t kMaxTier = 3;
inline constexpr uint32_t kMaxHttpStatus = 999;
inline constexpr uint32_t kMaxSlots = 1u << 16;
inline constexpr size_t kMaxOwnerBytes = 128;
inline constexpr size_t kMaxCursorBytes = 64;
inline constexpr uint64_t kU32Max = std::numeric_limits<uint32_t>::max();

inline Status CheckWorkerType(std::string_view t) {
  if (t.empty() || t == "gpu" || t == "cpu" || t == "storage") return Status::Ok();
  return Status::InvalidArgument("must be gpu, cpu or storage");
}

// ---- Shared records --------------------------------------------------------------------------

template <typename V, Is<Capabilities> M>
void Fields(V& v, M& m) {
  v.U32("cpu_cores", m.cpu_cores, {.always = true, .max = 1u << 20});
  v.Str("cpu_model", m.cpu_model, {});
  v.F64("ram_gb", m.ram_gb, {.always = true, .non_negative = true});
  v.F64("ram_available_gb", m.ram_available_gb, {.non_negative = true});
  v.F64("disk_gb", m.disk_gb, {.non_negative = true});
  v.F64("disk_free_gb", m.disk_free_gb, {.non_negative = true});
  v.Bool("has_gpu", m.has_gpu, {.always = true});
  v.Str("gpu_type", m.gpu_type, {});
  v.F64("gpu_memory_gb", m.gpu_memory_gb, {.non_negative = true});
  v.U32("gpu_count", m.gpu_count, {.max = 1024});
  v.Str("os", m.os, {});
  v.Str("arch", m.arch, {});
  v.Str("worker_type", m.worker_type, {.max_bytes = 16, .check = CheckWorkerType});
  v.StrMap("labels", m.labels, {});
}

template <typename V, Is<ServiceInfo> M>
void Fields(V& v, M& m) {
  v.Str("name", m.name,
        {.required = true, .max_bytes = kMaxServiceNameBytes, .check = CheckServiceName});
  v.Str("kind", m.kind, {.max_bytes = 16});
  v.StrList(
      "models", m.models,
      {.max_bytes = kMaxModelBytes, .check = CheckModelName, .max_items = kMaxModelsPerService});
}

template <typename V, Is<HttpRequest> M>
void Fields(V& v, M& m) {
  v.Str("method", m.method, {.required = true, .max_bytes = 16});
  v.Str("path", m.path, {.always = true});
  v.Str("query", m.query, {});
  v.StrMap("headers", m.headers, {});
}

template <typename V, Is<RunningTask> M>
void Fields(V& v, M& m) {
  v.Id("task_id", m.task_id, {.required = true});
  v.U32("attempt", m.attempt, {.always = true});
}

template <typename V, Is<Recommendation> M>
void Fields(V& v, M& m) {
  v.Str("service", m.service, {.always = true, .max_bytes = kMaxServiceNameBytes});
  v.U32("tier", m.tier, {.always = true, .max = kMaxTier});
  v.Str("image", m.image, {});
  v.U32("port", m.port, {.max = 65535});
  v.Str("reason", m.reason, {});
}

template <typename V, Is<AttemptEntry> M>
void Fields(V& v, M& m) {
  v.U32("attempt", m.attempt, {.always = true});
  v.Str("worker_id", m.worker_id, {.max_bytes = 128});
  v.I64("started_at_ms", m.started_at_ms, {});
  v.I64("ended_at_ms", m.ended_at_ms, {});
  v.Str("outcome", m.outcome, {.always = true, .max_bytes = 32});
  v.Str("error_code", m.error_code, {.max_bytes = 64});
  v.Str("error", m.error, {.max_bytes = kMaxAttemptErrorBytes});
}

template <typename V, Is<TaskView> M>
void Fields(V& v, M& m) {
  v.Id("task_id", m.task_id, {.required = true});
  v.Str("service", m.service, {.always = true, .max_bytes = kMaxServiceNameBytes});
  v.Enum("status", m.status, {.required = true}, TaskStatusName, ParseTaskStatus);
  v.U32("priority", m.priority, {.always = true, .max = kMaxPriority});
  v.U32("attempts", m.attempts, {.always = true});
  v.U32("max_attempts", m.max_attempts, {.always = true});
  v.Str("worker_id", m.worker_id, {});
  v.Bin("result", m.result, {});
  v.Str("content_type", m.content_type, {});
  v.U32("http_status", m.http_status, {.max = kMaxHttpStatus});
  v.Str("error", m.error, {});
  v.Str("error_code", m.error_code, {.max_bytes = 64});
  v.Bool("waiting_for_provider", m.waiting_for_provider, {});
  v.Str("idempotency_key", m.idempotency_key, {});
  v.I64("created_at_ms", m.created_at_ms, {.always = true});
  v.I64("started_at_ms", m.started_at_ms, {});
  v.I64("completed_at_ms", m.completed_at_ms, {});
  v.Str("owner", m.owner, {.max_bytes = kMaxOwnerBytes});
  v.F64("progress", m.progress, {});
  v.Str("progress_message", m.progress_message, {.max_bytes = 1024});
  v.U64("queue_position", m.queue_position, {});
  v.F64("estimated_start_s", m.estimated_start_s, {.non_negative = true});
  v.Bool("verified", m.verified, {});
  v.Bin("payload", m.payload, {});
  v.Str("payload_content_type", m.payload_content_type, {});
  v.U64("payload_bytes", m.payload_bytes, {});
  v.U64("result_bytes", m.result_bytes, {});
  v.List("attempt_log", m.attempt_log, {});
}

// ---- Worker endpoint -------------------------------------------------------------------------

template <typename V, Is<Ready> M>
void Fields(V& v, M& m) {
  v.Str("worker_id", m.worker_id, {.required = true, .max_bytes = 128});
  v.Str("name", m.name, {.max_bytes = 256});
  v.Str("token", m.token, {});
  v.Str("worker_secret", m.worker_secret, {.max_bytes = 128});
  v.Str("agent_version", m.agent_version, {.max_bytes = 64});
  v.U32("slots", m.slots, {.required = true, .min = 1, .max = kMaxSlots});
  v.Bool("simulated", m.simulated, {});
  v.Object("capabilities", m.capabilities, {.required = true});
  v.List("services", m.services, {.always = true});
  v.List("running", m.running, {});
  v.Str("enrol_token", m.enrol_token, {.max_bytes = 128});
  v.Bool("packed", m.packed, {});
}

template <typename V, Is<Welcome> M>
void Fields(V& v, M& m) {
  v.Str("worker_id", m.worker_id, {.always = true, .max_bytes = 128});
  v.U32("tier", m.tier, {.required = true, .max = kMaxTier});
  v.U32("heartbeat_ms", m.heartbeat_ms, {.required = true, .min = 1});
  v.U32("liveness", m.liveness, {.always = true, .min = 1, .max = 1000});
  v.List("recommendations", m.recommendations, {.always = true});
  v.Bool("packed", m.packed, {});
}

template <typename V, Is<TaskAssignment> M>
void Fields(V& v, M& m) {
  v.Id("task_id", m.task_id, {.required = true});
  v.U32("attempt", m.attempt, {.always = true});
  v.Str("service", m.service,
        {.required = true, .max_bytes = kMaxServiceNameBytes, .check = CheckServiceName});
  v.Bin("payload", m.payload, {.always = true});
  v.Str("content_type", m.content_type, {});
  v.U32("timeout_ms", m.timeout_ms, {});
  v.OptObject("request", m.request);
}

template <typename V, Is<TaskResult> M>
void Fields(V& v, M& m) {
  v.Id("task_id", m.task_id, {.required = true});
  // Only the holder of an attempt's lease may end it: a RESULT must say which attempt.
  v.U32("attempt", m.attempt, {.required = true, .min = 1});
  v.Enum("outcome", m.outcome, {.required = true}, OutcomeName, ParseOutcome);
  v.Bin("result", m.result, {});
  v.Str("content_type", m.content_type, {});
  v.U32("http_status", m.http_status, {.max = kMaxHttpStatus});
  v.Str("error", m.error, {});
  v.Bool("retryable", m.retryable, {.default_true = true});
  v.U32("run_ms", m.run_ms, {});
}

template <typename V, Is<Progress> M>
void Fields(V& v, M& m) {
  v.Id("task_id", m.task_id, {.required = true});
  v.U32("attempt", m.attempt, {.required = true, .min = 1});
  v.F64("fraction", m.fraction, {.non_negative = true});
  v.Str("message", m.message, {});
}

template <typename V, Is<Partial> M>
void Fields(V& v, M& m) {
  v.Id("task_id", m.task_id, {.required = true});
  v.U32("attempt", m.attempt, {.required = true, .min = 1});
  v.U32("seq", m.seq, {.always = true});
  v.Bin("data", m.data, {.always = true});
  v.U32("http_status", m.http_status, {.max = kMaxHttpStatus});
  v.Str("content_type", m.content_type, {.max_bytes = 256});
  v.StrMap("headers", m.headers, {});
}

template <typename V, Is<CallPartial> M>
void Fields(V& v, M& m) {
  v.U64("ref", m.ref, {.always = true});
  v.Id("task_id", m.task_id, {.required = true});
  v.U32("seq", m.seq, {.always = true});
  v.Bin("data", m.data, {.always = true});
  v.U32("http_status", m.http_status, {.max = kMaxHttpStatus});
  v.Str("content_type", m.content_type, {.max_bytes = 256});
  v.StrMap("headers", m.headers, {});
}

template <typename V, Is<CancelAttempt> M>
void Fields(V& v, M& m) {
  v.Id("task_id", m.task_id, {.required = true});
  v.U32("attempt", m.attempt, {.always = true});
  v.Str("reason", m.reason, {});
}

template <typename V, Is<Heartbeat> M>
void Fields(V& v, M& m) {
  v.F64("load", m.load, {.always = true, .non_negative = true});
  v.U32("in_flight", m.in_flight, {.always = true});
  v.F64("ram_available_gb", m.ram_available_gb, {.non_negative = true});
  v.F64("gpu_util", m.gpu_util, {.non_negative = true});
  v.Bool("packed", m.packed, {});
}

template <typename V, Is<Manifest> M>
void Fields(V& v, M& m) {
  v.List("services", m.services, {.required = true});
  v.U32("slots", m.slots, {.max = kMaxSlots});
}

template <typename V, Is<Disconnect> M>
void Fields(V& v, M& m) {
  v.Str("reason", m.reason, {});
  v.Bool("reconnect", m.reconnect, {.always = true, .default_true = true});
}

// ---- Client endpoint -------------------------------------------------------------------------

template <typename V, Is<Submit> M>
void Fields(V& v, M& m) {
  v.U64("ref", m.ref, {.always = true});
  // Required unless `model` is given (Validate).
  v.Str("service", m.service, {.max_bytes = kMaxServiceNameBytes, .check = CheckServiceName});
  v.Str("model", m.model, {.max_bytes = kMaxModelBytes, .check = CheckModelName});
  v.Bin("payload", m.payload, {.always = true});
  v.Str("content_type", m.content_type, {.max_bytes = 256});
  v.U32("priority", m.priority, {.max = kMaxPriority});
  v.U32("max_attempts", m.max_attempts, {.max = 100});
  v.U32("timeout_ms", m.timeout_ms, {});
  v.Str("idempotency_key", m.idempotency_key, {.max_bytes = 256});
  v.U32("min_tier", m.min_tier, {.max = kMaxTier});
  v.F64("min_gpu_memory_gb", m.min_gpu_memory_gb, {.non_negative = true});
  v.I64("run_at_ms", m.run_at_ms, {});
  v.Enum("mode", m.mode, {}, SubmitModeName, ParseSubmitMode);
  v.OptObject("request", m.request);
  v.Str("owner", m.owner, {.max_bytes = kMaxOwnerBytes});
  v.U32("wait_ms", m.wait_ms, {});
  v.Bool("announce", m.announce, {});
  v.Bool("trusted_only", m.trusted_only, {});
}

template <typename V, Is<Accepted> M>
void Fields(V& v, M& m) {
  v.U64("ref", m.ref, {.always = true});
  v.Id("task_id", m.task_id, {.required = true});
  v.Enum("status", m.status, {.always = true}, TaskStatusName, ParseTaskStatus);
  v.Bool("duplicate", m.duplicate, {});
  v.Bool("waiting_for_provider", m.waiting_for_provider, {});
}

template <typename V, Is<TaskInfo> M>
void Fields(V& v, M& m) {
  v.U64("ref", m.ref, {.always = true});
  v.Object("task", m.task, {.required = true});
}

template <typename V, Is<Get> M>
void Fields(V& v, M& m) {
  v.U64("ref", m.ref, {.always = true});
  v.Id("task_id", m.task_id, {.required = true});
  v.U32("wait_ms", m.wait_ms, {});
  v.Str("owner", m.owner, {.max_bytes = kMaxOwnerBytes});
  v.Bool("admin", m.admin, {});
  v.Bool("watch", m.watch, {});
  v.Bool("detail", m.detail, {});
}

template <typename V, Is<CancelTask> M>
void Fields(V& v, M& m) {
  v.U64("ref", m.ref, {.always = true});
  v.Id("task_id", m.task_id, {.required = true});
  v.Str("owner", m.owner, {.max_bytes = kMaxOwnerBytes});
  v.Bool("admin", m.admin, {});
}

template <typename V, Is<List> M>
void Fields(V& v, M& m) {
  v.U64("ref", m.ref, {.always = true});
  v.Str("service", m.service, {.max_bytes = kMaxServiceNameBytes});
  v.Str("status", m.status, {.max_bytes = 32});
  v.U32("limit", m.limit, {.always = true, .max = 10000});
  v.Str("owner", m.owner, {.max_bytes = kMaxOwnerBytes});
  v.Bool("admin", m.admin, {});
  v.Str("account", m.account, {.max_bytes = kMaxOwnerBytes});
  v.Str("worker_id", m.worker_id, {.max_bytes = 128});
  v.Str("error_code", m.error_code, {.max_bytes = 64});
  v.I64("since_ms", m.since_ms, {});
  v.I64("until_ms", m.until_ms, {});
  v.Str("cursor", m.cursor, {.max_bytes = kMaxCursorBytes});
}

template <typename V, Is<TaskList> M>
void Fields(V& v, M& m) {
  v.U64("ref", m.ref, {.always = true});
  v.List("tasks", m.tasks, {.always = true});
  v.Str("next_cursor", m.next_cursor, {.max_bytes = kMaxCursorBytes});
}

template <typename V, Is<Admin> M>
void Fields(V& v, M& m) {
  v.U64("ref", m.ref, {.always = true});
  v.Str("query", m.query, {.required = true, .max_bytes = 64});
  v.Str("task_id", m.task_id, {.max_bytes = 32});
  v.Str("worker_id", m.worker_id, {.max_bytes = 128});
  v.StrMap("args", m.args, {});
}

template <typename V, Is<AdminReply> M>
void Fields(V& v, M& m) {
  v.U64("ref", m.ref, {.always = true});
  v.Json("data", m.data);
}

// ---- Both endpoints ---------------------------------------------------------------------------

template <typename V, Is<Error> M>
void Fields(V& v, M& m) {
  v.U64("ref", m.ref, {});
  v.Str("code", m.code, {.required = true, .max_bytes = 64});
  v.Str("message", m.message, {.always = true});
  v.StrList("available_services", m.available_services, {.max_bytes = kMaxServiceNameBytes});
  v.Str("suggestion", m.suggestion, {});
  v.F64("balance", m.balance, {});
  v.F64("needed", m.needed, {.non_negative = true});
}

// ---- Rules across fields, applied after decoding ------------------------------------------------

inline Status Validate(HttpRequest& r) {
  if (r.path.empty()) r.path = "/";
  if (r.path.front() != '/')
    return Status::InvalidArgument("field 'request.path' must start with '/'");
  return Status::Ok();
}
inline Status Validate(Ready& r) {
  if (r.worker_id.empty()) return Status::InvalidArgument("READY: field 'worker_id' is empty");
  return Status::Ok();
}
inline Status Validate(Submit& s) {
  if (s.service.empty() && s.model.empty()) {
    return Status::InvalidArgument("SUBMIT: required field 'service' is missing (or give 'model')");
  }
  return Status::Ok();
}
template <typename M>
Status Validate(M&) {
  return Status::Ok();
}

}  // namespace rma::proto::internal
