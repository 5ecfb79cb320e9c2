// The messages of the rma wire protocol (docs/protocol.md), as plain structs.
//
// Every body is a msgpack map with string keys; the field names in the comments are the keys on the
// wire. Optional fields are left out when they hold their default. codec.h encodes and decodes
// these structs (each message's fields are listed once, in message_fields.h); frames.h puts them in
// ZeroMQ messages. These types carry no behaviour and are safe to copy between threads; payloads
// and results are shared Bytes, so copying a message does not copy them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/status.h"
#include "protocol/bytes.h"
#include "protocol/ids.h"

namespace rma::proto {

// Frame 0 of every message: protocol name and version.
inline constexpr std::string_view kProtocolHeader = "RMA1";

// Frame 1 of every message: one byte.
enum class Command : uint8_t {
  // Worker endpoint.
  kReady = 0x01,       // W->B register (or register again)
  kWelcome = 0x02,     // B->W registration accepted
  kTask = 0x03,        // B->W a task to run (batchable)
  kResult = 0x04,      // W->B outcome of one attempt (batchable)
  kProgress = 0x05,    // W->B a running task is alive (renews its lease)
  kCancel = 0x06,      // B->W stop an attempt
  kHeartbeat = 0x07,   // both ways, both endpoints
  kManifest = 0x08,    // W->B the worker's services changed
  kDrain = 0x09,       // W->B the worker is draining; B->W please drain
  kDisconnect = 0x0A,  // both ways: goodbye / register again / refused
  kError = 0x0B,       // B->peer a request or message was refused
  kPartial = 0x0C,     // W->B a chunk of a running attempt's output (streaming)
  // Client endpoint.
  kSubmit = 0x21,       // C->B submit a task (batchable)
  kAccepted = 0x22,     // B->C task accepted (durable when the broker has a store)
  kTaskInfo = 0x23,     // B->C the state of one task
  kGet = 0x24,          // C->B read a task, optionally waiting for it to end
  kCancelTask = 0x25,   // C->B cancel a task
  kList = 0x26,         // C->B list tasks
  kTaskList = 0x27,     // B->C answer to LIST
  kAdmin = 0x28,        // C->B admin query or action
  kAdminReply = 0x29,   // B->C answer to ADMIN
  kCallPartial = 0x2A,  // B->C a chunk of a synchronous call's output (streaming)
};

std::string_view CommandName(Command c);
bool IsKnownCommand(uint8_t byte);

// ---- Shared records
// --------------------------------------------------------------------------------

enum class TaskStatus : uint8_t {
  kQueued = 0,  // waiting in its service queue (also: waiting for run_at or a retry back-off)
  kRunning,     // leased to one worker
  kCompleted,   // finished with a result
  kFailed,      // the last attempt failed; a retry is scheduled
  kDead,        // failed max_attempts times (dead-lettered); an admin may retry or discard it
  kCancelled,   // cancelled by a client or admin
  kExpired,     // waited longer than the maximum queue time without a provider
};
// The one list of task states, in enum order: the SQL CHECK constraint, the OpenAPI enums and
// rmactl are checked against it (tests/contracts/task_states_test.cc).
const std::vector<std::string_view>& TaskStatusNames();
std::string_view TaskStatusName(TaskStatus s);
std::optional<TaskStatus> ParseTaskStatus(std::string_view name);
inline bool IsTerminal(TaskStatus s) {
  return s == TaskStatus::kCompleted || s == TaskStatus::kDead || s == TaskStatus::kCancelled ||
         s == TaskStatus::kExpired;
}

// What a worker reports about its machine. Real workers detect it; simulated ones declare it.
struct Capabilities {
  uint32_t cpu_cores = 0;                     // "cpu_cores"
  std::string cpu_model;                      // "cpu_model"
  double ram_gb = 0;                          // "ram_gb"
  double ram_available_gb = 0;                // "ram_available_gb"
  double disk_gb = 0;                         // "disk_gb"
  double disk_free_gb = 0;                    // "disk_free_gb"
  bool has_gpu = false;                       // "has_gpu"
  std::string gpu_type;                       // "gpu_type"
  double gpu_memory_gb = 0;                   // "gpu_memory_gb" (largest GPU)
  uint32_t gpu_count = 0;                     // "gpu_count"
  std::string os;                             // "os"
  std::string arch;                           // "arch"
  std::string worker_type;                    // "worker_type": "", "gpu", "cpu" or "storage"
  std::map<std::string, std::string> labels;  // "labels"
  bool operator==(const Capabilities&) const = default;
};

// One service in a worker's manifest.
struct ServiceInfo {
  std::string name;  // "name": e.g. "rag", "ocr", "chromadb"
  std::string kind;  // "kind": "http", "exec" or "builtin"
  // "models": the models this service serves (an LLM server's model ids), at most
  // kMaxModelsPerService, each a model name (names.h); empty: none named. A task with a `model`
  // goes only to a worker whose service lists it.
  std::vector<std::string> models;
  bool operator==(const ServiceInfo&) const = default;
};

// The HTTP request of a synchronous service call, replayed by the worker's http handler.
struct HttpRequest {
  std::string method;                          // "method"
  std::string path;                            // "path": below the service, starting with "/"
  std::string query;                           // "query": without "?"
  std::map<std::string, std::string> headers;  // "headers": forwarded end-to-end headers
  bool operator==(const HttpRequest&) const = default;
};

// ---- Worker endpoint
// -------------------------------------------------------------------------------

struct RunningTask {
  TaskId task_id;        // "task_id"
  uint32_t attempt = 0;  // "attempt"
  bool operator==(const RunningTask&) const = default;
};

struct Ready {
  std::string worker_id;  // "worker_id": stable identity
  std::string name;       // "name": human name
  std::string token;      // "token": unused since the token travels in the handshake (PLAIN)
  // "worker_secret": random, kept with the worker id in its data directory; lets a reconnecting
  // worker take over its own id while its old session still looks alive (nobody else can).
  std::string worker_secret;
  // Not on the wire: the CURVE public key (Z85) the handshake authenticated, set by the broker.
  std::string worker_key;
  std::string agent_version;          // "agent_version"
  uint32_t slots = 1;                 // "slots": tasks it may run at once (its credit)
  bool simulated = false;             // "simulated": declared, not detected, capabilities
  Capabilities capabilities;          // "capabilities"
  std::vector<ServiceInfo> services;  // "services": the whole manifest
  std::vector<RunningTask> running;   // "running": attempts still running after a reconnect
  // "packed": this worker reads packed body frames (several bodies in one frame, docs/protocol.md
  // §3), so the broker may send it batches that way.
  bool packed = false;
  // "enrol_token": a one-time enrolment token (rma-worker --enrol) that binds this worker's CURVE
  // key to the token's account on this connection.
  std::string enrol_token;
  // Not on the wire, set by the broker from the worker's credential: its account, and the highest
  // tier it may be given (0: no cap) and the services it may offer (empty: any).
  std::string account;
  uint32_t tier_cap = 0;
  std::vector<std::string> allowed_services;
  bool operator==(const Ready&) const = default;
};

struct Recommendation {
  std::string service;  // "service"
  uint32_t tier = 0;    // "tier"
  std::string image;    // "image"
  uint32_t port = 0;    // "port"
  std::string reason;   // "reason"
  bool operator==(const Recommendation&) const = default;
};

struct Welcome {
  std::string worker_id;      // "worker_id"
  uint32_t tier = 3;          // "tier": 1 GPU, 2 CPU, 3 storage
  uint32_t heartbeat_ms = 0;  // "heartbeat_ms": the interval both sides use
  uint32_t liveness = 3;      // "liveness": missed intervals before the peer is dead
  std::vector<Recommendation> recommendations;  // "recommendations"
  bool packed = false;  // "packed": the broker reads packed body frames (the worker may send them)
  bool operator==(const Welcome&) const = default;
};

struct TaskAssignment {
  TaskId task_id;                      // "task_id"
  uint32_t attempt = 1;                // "attempt": 1 for the first run
  std::string service;                 // "service"
  Bytes payload;                       // "payload" (bin)
  std::string content_type;            // "content_type" of the payload
  uint32_t timeout_ms = 0;             // "timeout_ms": the broker fails the attempt after this
  std::optional<HttpRequest> request;  // "request": present for synchronous service calls
  bool operator==(const TaskAssignment&) const = default;
};

enum class Outcome : uint8_t { kOk = 0, kError, kCancelled };
std::string_view OutcomeName(Outcome o);
std::optional<Outcome> ParseOutcome(std::string_view name);

struct TaskResult {
  TaskId task_id;                  // "task_id"
  uint32_t attempt = 1;            // "attempt"
  Outcome outcome = Outcome::kOk;  // "outcome": "ok", "error" or "cancelled"
  Bytes result;                    // "result" (bin)
  std::string content_type;        // "content_type" of the result
  uint32_t http_status = 0;        // "http_status": backend status for http handlers (0: none)
  std::string error;               // "error": human-readable reason when outcome != ok
  bool retryable = true;           // "retryable": false when retrying cannot help (bad payload)
  uint32_t run_ms = 0;             // "run_ms": time the handler ran
  bool operator==(const TaskResult&) const = default;
};

struct Progress {
  TaskId task_id;        // "task_id"
  uint32_t attempt = 1;  // "attempt"
  double fraction = 0;   // "fraction": 0..1, or 0 when unknown
  std::string message;   // "message"
  bool operator==(const Progress&) const = default;
};

// PARTIAL (W->B): one chunk of a running attempt's output, as the backend produced it. Chunks of
// one attempt carry seq 0, 1, 2, ...; the first also says the answer's status, content type and
// headers. The attempt's RESULT ends the stream (docs/protocol.md §5.15).
struct Partial {
  TaskId task_id;                              // "task_id"
  uint32_t attempt = 1;                        // "attempt"
  uint32_t seq = 0;                            // "seq"
  Bytes data;                                  // "data" (bin)
  uint32_t http_status = 0;                    // "http_status": seq 0 only (0: none)
  std::string content_type;                    // "content_type": seq 0 only
  std::map<std::string, std::string> headers;  // "headers": seq 0 only
  bool operator==(const Partial&) const = default;
};

struct CancelAttempt {
  TaskId task_id;        // "task_id"
  uint32_t attempt = 1;  // "attempt"
  std::string reason;    // "reason": "cancelled", "timeout", ...
  bool operator==(const CancelAttempt&) const = default;
};

// Worker heartbeats may carry load; broker heartbeats carry nothing (no body frame).
struct Heartbeat {
  double load = 0;              // "load": 1-minute load average divided by cores (0..)
  uint32_t in_flight = 0;       // "in_flight"
  double ram_available_gb = 0;  // "ram_available_gb"
  double gpu_util = 0;          // "gpu_util": 0..1
  // "packed": on the client endpoint, a client's HEARTBEAT saying it reads packed body frames, and
  // the broker's answer saying it does too (docs/protocol.md §3, §6.6).
  bool packed = false;
  bool operator==(const Heartbeat&) const = default;
};

struct Manifest {
  std::vector<ServiceInfo> services;  // "services": the whole new manifest
  uint32_t slots = 0;                 // "slots": 0 leaves slots unchanged
  bool operator==(const Manifest&) const = default;
};

struct Disconnect {
  std::string reason;     // "reason"
  bool reconnect = true;  // "reconnect": false when registering again cannot succeed (refused)
  bool operator==(const Disconnect&) const = default;
};

// ---- Client endpoint
// -------------------------------------------------------------------------------

enum class SubmitMode : uint8_t {
  kAsync = 0,  // answer ACCEPTED once the task is recorded
  kSync,       // no ACCEPTED; answer TASK_INFO when the task ends, ERROR at once when no provider
};
std::string_view SubmitModeName(SubmitMode m);
std::optional<SubmitMode> ParseSubmitMode(std::string_view name);

struct Submit {
  uint64_t ref = 0;  // "ref": the client's correlation id, echoed in the answer
  // "service": may be left out when `model` is given (the broker picks a service with a live
  // provider of that model, docs/protocol.md §6.1).
  std::string service;
  Bytes payload;                 // "payload" (bin)
  std::string content_type;      // "content_type"
  uint32_t priority = 0;         // "priority": 0..9, higher first
  uint32_t max_attempts = 0;     // "max_attempts": 0 = broker default
  uint32_t timeout_ms = 0;       // "timeout_ms": per attempt, 0 = broker default
  std::string idempotency_key;   // "idempotency_key"
  uint32_t min_tier = 0;         // "min_tier": 0 = any; 1 = GPU only; 2 = GPU or CPU
  double min_gpu_memory_gb = 0;  // "min_gpu_memory_gb": requirement on the worker
  int64_t run_at_ms = 0;         // "run_at_ms": Unix ms before which it must not start (0 = now)
  SubmitMode mode = SubmitMode::kAsync;  // "mode": "async" or "sync"
  std::optional<HttpRequest> request;    // "request": synchronous service call
  // "owner": the account the task belongs to, as the (authenticated) client says; "" = anonymous.
  // Only the owner (or an admin) can read, list or cancel it, and idempotency keys are per owner.
  std::string owner;
  // "wait_ms": async only: after ACCEPTED, also answer TASK_INFO when the task ends or this passes
  // (a GET with wait_ms sent at acceptance, without its round trip); 0 = no.
  uint32_t wait_ms = 0;
  // "announce": sync only: also answer ACCEPTED (with the task id) as soon as the call is taken,
  // before its PARTIALs and TASK_INFO, so that the caller can cancel it (CANCEL_TASK) when its own
  // client goes away.
  bool announce = false;
  // "model": only a worker whose service lists this model (ServiceInfo::models) may run it. Last
  // here (not in wire order) so that positional initialisers of the fields above stay valid.
  std::string model;
  // "trusted_only": only a worker an admin marked trusted may run it (docs/protocol.md §6.1).
  bool trusted_only = false;
  bool operator==(const Submit&) const = default;
};

struct Accepted {
  uint64_t ref = 0;                         // "ref"
  TaskId task_id;                           // "task_id"
  TaskStatus status = TaskStatus::kQueued;  // "status"
  bool duplicate = false;  // "duplicate": an earlier task with the same idempotency key
  bool waiting_for_provider =
      false;  // "waiting_for_provider": no live worker provides the service yet
  bool operator==(const Accepted&) const = default;
};

// One attempt of a task in its attempt log (GET /api/tasks/{id}?detail=1), oldest first. The log
// is kept with the task's row and bounded (kMaxAttemptLog entries, the newest kept).
struct AttemptEntry {
  uint32_t attempt = 0;       // "attempt": 1 for the first run
  std::string worker_id;      // "worker_id"
  int64_t started_at_ms = 0;  // "started_at_ms"
  int64_t ended_at_ms = 0;    // "ended_at_ms": 0 = still running
  // "outcome": completed | failed | timeout | worker_lost | cancelled | requeued | running
  std::string outcome;
  std::string error_code;  // "error_code"
  std::string error;       // "error": at most kMaxAttemptErrorBytes
  bool operator==(const AttemptEntry&) const = default;
};
inline constexpr size_t kMaxAttemptLog = 64;
inline constexpr size_t kMaxAttemptErrorBytes = 512;

// The public view of a task (the HTTP API's task object).
struct TaskView {
  TaskId task_id;                           // "task_id"
  std::string service;                      // "service"
  TaskStatus status = TaskStatus::kQueued;  // "status"
  uint32_t priority = 0;                    // "priority"
  uint32_t attempts = 0;                    // "attempts": times it was started
  uint32_t max_attempts = 0;                // "max_attempts"
  std::string worker_id;                    // "worker_id": last worker it ran on
  Bytes result;                             // "result" (bin)
  std::string content_type;                 // "content_type" of the result
  uint32_t http_status = 0;                 // "http_status"
  std::string error;                        // "error"
  std::string
      error_code;  // "error_code": timeout|handler_error|worker_lost|cancelled|queue_timeout|...
  bool waiting_for_provider =
      false;                    // "waiting_for_provider": queued and no live worker provides it
  std::string idempotency_key;  // "idempotency_key"
  int64_t created_at_ms = 0;    // "created_at_ms"
  int64_t started_at_ms = 0;    // "started_at_ms": 0 = not started
  int64_t completed_at_ms = 0;  // "completed_at_ms": 0 = not ended
  std::string owner;            // "owner": the account that submitted it
  // "progress", "progress_message": the running attempt's last PROGRESS (-1: none reported).
  double progress = -1;
  std::string progress_message;
  // "queue_position": while queued, its place in its service's fair order (1: the next to start,
  // an estimate); 0 otherwise. "estimated_start_s": while queued, when it should start, in seconds
  // from now, from the service's recent start rate; 0 when unknown or not queued.
  uint64_t queue_position = 0;
  double estimated_start_s = 0;
  // "verified": the result was returned by two workers of different accounts that agreed
  // (verification by replication, docs/architecture.md).
  bool verified = false;
  // Only in the answer to a GET with `detail`: "payload" (bin) and "payload_content_type", and the
  // "attempt_log". "payload_bytes" and "result_bytes" are the sizes of both (also in listings,
  // which leave the bytes out).
  Bytes payload;
  std::string payload_content_type;
  uint64_t payload_bytes = 0;
  uint64_t result_bytes = 0;
  std::vector<AttemptEntry> attempt_log;
  bool operator==(const TaskView&) const = default;
};

// PARTIAL (B->C): a chunk of a synchronous call's output relayed to its caller, in order; the
// call's TASK_INFO ends the stream (docs/protocol.md §6.7).
struct CallPartial {
  uint64_t ref = 0;                            // "ref": the SUBMIT's
  TaskId task_id;                              // "task_id"
  uint32_t seq = 0;                            // "seq": 0, 1, 2, ... for the caller
  Bytes data;                                  // "data" (bin)
  uint32_t http_status = 0;                    // "http_status": seq 0 only
  std::string content_type;                    // "content_type": seq 0 only
  std::map<std::string, std::string> headers;  // "headers": seq 0 only
  bool operator==(const CallPartial&) const = default;
};

struct TaskInfo {
  uint64_t ref = 0;  // "ref"
  TaskView task;     // "task"
  bool operator==(const TaskInfo&) const = default;
};

// Who asks, on GET, CANCEL_TASK and LIST: the account ("owner") and whether it is an admin. A task
// of another owner is "not found" to a non-admin.
struct Get {
  uint64_t ref = 0;      // "ref"
  TaskId task_id;        // "task_id"
  uint32_t wait_ms = 0;  // "wait_ms": hold the answer until the task ends or this passes
  std::string owner;     // "owner"
  bool admin = false;    // "admin"
  // "watch": answer TASK_INFO now and again at every change of status or progress, relay the
  // task's PARTIALs, until it ends or wait_ms passes (GET /api/tasks/{id}/events).
  bool watch = false;
  // "detail": the answer's task also carries its payload and attempt log (the task page).
  bool detail = false;
  bool operator==(const Get&) const = default;
};

struct CancelTask {
  uint64_t ref = 0;    // "ref"
  TaskId task_id;      // "task_id"
  std::string owner;   // "owner"
  bool admin = false;  // "admin"
  bool operator==(const CancelTask&) const = default;
};

struct List {
  uint64_t ref = 0;      // "ref"
  std::string service;   // "service": "" = all
  std::string status;    // "status": "" = all
  uint32_t limit = 100;  // "limit"
  std::string owner;     // "owner"
  bool admin = false;    // "admin": all owners' tasks
  // Filters of the console's task browser; "" / 0 = any.
  std::string account;     // "account": admin only: this owner's tasks
  std::string worker_id;   // "worker_id": the worker that ran the last attempt
  std::string error_code;  // "error_code"
  int64_t since_ms = 0;    // "since_ms": created at or after (Unix ms)
  int64_t until_ms = 0;    // "until_ms": created before (Unix ms)
  // "cursor": the previous page's next_cursor (opaque; docs/protocol.md §6.4): the page starts
  // after the task it names, in the order created_at DESC, task_id DESC.
  std::string cursor;
  bool operator==(const List&) const = default;
};

struct TaskList {
  uint64_t ref = 0;             // "ref"
  std::vector<TaskView> tasks;  // "tasks": newest first, results left out
  std::string next_cursor;      // "next_cursor": the next page's cursor; "" = last page
  bool operator==(const TaskList&) const = default;
};

struct Admin {
  uint64_t ref = 0;       // "ref"
  std::string query;      // "query": workers|services|models|stats|queues|health|retry|...
  std::string task_id;    // "task_id": for retry/discard (decimal string)
  std::string worker_id;  // "worker_id": for drain and credential_revoke
  // "args": the arguments of the account queries (account, role, scopes, services, expires_s,
  // prefix, version, used; docs/protocol.md §6.5), as strings.
  std::map<std::string, std::string> args;
  bool operator==(const Admin&) const = default;
};

// ADMIN_REPLY is in admin_reply.h (its document is JSON-shaped and needs nlohmann::json).
struct AdminReply;

// ---- Both endpoints
// ---------------------------------------------------------------------------------

struct Error {
  uint64_t ref = 0;     // "ref": the request it answers (0: a message without ref)
  std::string code;     // "code": a status code name, e.g. "invalid_argument", "unavailable"
  std::string message;  // "message"
  std::vector<std::string> available_services;  // "available_services": when no provider
  std::string suggestion;                       // "suggestion"
  // "balance", "needed": payment_required only: the account's credits and what the task needs.
  double balance = 0;
  double needed = 0;
  bool operator==(const Error&) const = default;
};

// The ERROR that says `s` (its code's name and message) in answer to `ref`.
Error ErrorOf(uint64_t ref, const Status& s);

// ---- Directions -------------------------------------------------------------------------------

// A command that has no body (broker HEARTBEAT, DRAIN), as a value typed code can send.
struct Bodyless {
  Command command = Command::kHeartbeat;
  bool operator==(const Bodyless&) const = default;
};

// What the broker sends on each endpoint as typed values; only the code at the socket encodes them
// (ADMIN_REPLY, which the loop builds itself, is not among them).
using ToWorkerMessage =
    std::variant<Welcome, TaskAssignment, CancelAttempt, Disconnect, Error, Bodyless>;
using ToClientMessage = std::variant<Accepted, TaskInfo, TaskList, CallPartial, Error, Bodyless>;
// What a worker sends the broker (a batch of one command: several RESULTs, or one of the others).
using ToBrokerMessage =
    std::variant<Ready, TaskResult, Progress, Partial, Heartbeat, Manifest, Disconnect, Bodyless>;

inline Command CommandOf(const Welcome&) { return Command::kWelcome; }
inline Command CommandOf(const TaskAssignment&) { return Command::kTask; }
inline Command CommandOf(const CancelAttempt&) { return Command::kCancel; }
inline Command CommandOf(const Disconnect&) { return Command::kDisconnect; }
inline Command CommandOf(const Error&) { return Command::kError; }
inline Command CommandOf(const Accepted&) { return Command::kAccepted; }
inline Command CommandOf(const TaskInfo&) { return Command::kTaskInfo; }
inline Command CommandOf(const TaskList&) { return Command::kTaskList; }
inline Command CommandOf(const Ready&) { return Command::kReady; }
inline Command CommandOf(const TaskResult&) { return Command::kResult; }
inline Command CommandOf(const Progress&) { return Command::kProgress; }
inline Command CommandOf(const Partial&) { return Command::kPartial; }
inline Command CommandOf(const CallPartial&) { return Command::kCallPartial; }
inline Command CommandOf(const Heartbeat&) { return Command::kHeartbeat; }
inline Command CommandOf(const Manifest&) { return Command::kManifest; }
inline Command CommandOf(const Bodyless& b) { return b.command; }
template <typename... T>
Command CommandOf(const std::variant<T...>& message) {
  return std::visit([](const auto& m) { return CommandOf(m); }, message);
}

}  // namespace rma::proto
