// Status and Result<T>: how rma's core code reports failure without exceptions.
//
// Modelled on LevelDB's Status: a code plus a human message. Exceptions thrown by third-party
// libraries (pqxx, cppzmq, msgpack, Pistache) are caught at the adapter that calls them and turned
// into a Status, so they never cross into core logic. Both types are plain values, safe to move
// between threads.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "common/check.h"

namespace rma {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is wrong; retrying the same input will fail again
  kNotFound,            // the named thing does not exist
  kAlreadyExists,       // the thing to create exists already
  kFailedPrecondition,  // the system is not in a state where this can run (e.g. a draining worker)
  kResourceExhausted,   // a limit was hit: queue full, rate limit, size limit
  kUnavailable,         // transient: a peer, the database or a provider is not there right now
  kDeadlineExceeded,    // the operation ran out of time
  kCancelled,           // somebody cancelled it
  kUnauthenticated,     // no or bad credentials
  kPermissionDenied,    // credentials valid but not allowed
  kInternal,            // a bug or an unexpected library failure
};

// Stable lower_snake_case name of a code ("invalid_argument"); also used on the wire and in JSON
// errors.
std::string_view StatusCodeName(StatusCode code);
// Inverse of StatusCodeName; unknown names map to kInternal.
StatusCode StatusCodeFromName(std::string_view name);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string m) {
    return {StatusCode::kInvalidArgument, std::move(m)};
  }
  static Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
  static Status FailedPrecondition(std::string m) {
    return {StatusCode::kFailedPrecondition, std::move(m)};
  }
  static Status ResourceExhausted(std::string m) {
    return {StatusCode::kResourceExhausted, std::move(m)};
  }
  static Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
  static Status DeadlineExceeded(std::string m) {
    return {StatusCode::kDeadlineExceeded, std::move(m)};
  }
  static Status Cancelled(std::string m) { return {StatusCode::kCancelled, std::move(m)}; }
  static Status Unauthenticated(std::string m) {
    return {StatusCode::kUnauthenticated, std::move(m)};
  }
  static Status PermissionDenied(std::string m) {
    return {StatusCode::kPermissionDenied, std::move(m)};
  }
  static Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid_argument: field 'service' is missing", or "ok".
  std::string ToString() const;

  // Prefixes the message with context ("decoding READY: ...") and keeps the code.
  Status WithContext(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Either a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value)
      : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor): ergonomic return
  Result(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    RMA_CHECK(!std::get<Status>(data_).ok()) << "Result constructed from an ok Status";
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(data_);
  }
  T& value() & {
    RMA_CHECK(ok()) << "value() of a failed Result: " << status().ToString();
    return std::get<T>(data_);
  }
  const T& value() const& {
    RMA_CHECK(ok()) << "value() of a failed Result: " << status().ToString();
    return std::get<T>(data_);
  }
  T&& value() && {
    RMA_CHECK(ok()) << "value() of a failed Result: " << status().ToString();
    return std::get<T>(std::move(data_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace rma

#define RMA_STATUS_CONCAT_INNER(a, b) a##b
#define RMA_STATUS_CONCAT(a, b) RMA_STATUS_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` is not ok.
#define RMA_RETURN_IF_ERROR(expr) \
  RMA_RETURN_IF_ERROR_IMPL(RMA_STATUS_CONCAT(rma_status_, __COUNTER__), expr)
#define RMA_RETURN_IF_ERROR_IMPL(tmp, expr) \
  do {                                      \
    ::rma::Status tmp = (expr);             \
    if (!tmp.ok()) return tmp;              \
  } while (0)

// `RMA_ASSIGN_OR_RETURN(auto x, Compute());` declares x from a Result or returns its Status.
#define RMA_ASSIGN_OR_RETURN(lhs, expr) \
  RMA_ASSIGN_OR_RETURN_IMPL(RMA_STATUS_CONCAT(rma_result_, __COUNTER__), lhs, expr)
#define RMA_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
