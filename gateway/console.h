// The operator's console's request parsing and JSON (issue 19, docs/http-api.md "Console"): the
// task browser's query string, the task page's detail object, and the bodies of the bulk actions on
// dead tasks. Pure functions, safe on any thread; the handlers are in api_tasks.cc and
// api_admin.cc.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"
#include "protocol/messages.h"

namespace rma::gateway {

// Payloads and results larger than this are left out of the task page's JSON (fetched raw).
inline constexpr size_t kMaxInlineBytes = 256u << 10;
// The bulk actions' body and their id lists.
inline constexpr size_t kMaxBulkBodyBytes = 512u << 10;
// At most this many ids: they travel to the broker as one ADMIN argument (a 64 KiB string).
inline constexpr size_t kMaxBulkIds = 3000;

// A time filter: RFC 3339 ("2026-11-22T11:08:43Z", fractions and offsets allowed) or Unix seconds
// (fractions allowed); returns Unix milliseconds. InvalidArgument otherwise.
Result<int64_t> ParseTimeMs(std::string_view text);

// GET /api/tasks?service=&status=&account=&worker=&error_code=&since=&until=&cursor=&limit= as a
// LIST for this caller. InvalidArgument (400) names the bad parameter; PermissionDenied (403) for
// a non-admin asking for another account.
Result<proto::List> ParseTaskListQuery(std::string_view query, const std::string& owner,
                                       bool admin);

// The task object of GET /api/tasks/{id}?detail=1: TaskJson with the result, plus the payload
// (rendered like the result), both sizes and content types, and the attempt log. A payload or
// result over kMaxInlineBytes is left out ("payload_truncated" / "result_truncated": true).
nlohmann::json TaskDetailJson(const proto::TaskView& task, bool with_owner);

// The body of POST /api/admin/tasks/retry|discard ({"service"?, "error_code"?, "task_ids"?,
// "limit"?}; empty = every dead task up to the limit) as the ADMIN query bulk_retry|bulk_discard.
Result<proto::Admin> ParseBulkBody(std::string_view body, bool retry);

}  // namespace rma::gateway
