// The operator's console's pure rules (issue 19, docs/http-api.md "Console"): the attempt log kept
// with each task, the task browser's filters and cursor, the worker page's connection history and
// the history charts' buckets. No I/O and no state of their own: the scheduler (broker loop
// thread) and the PostgreSQL store (its reader and writer threads) call them on their own values.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "broker/store_types.h"
#include "common/clock.h"
#include "common/status.h"
#include "protocol/messages.h"

namespace rma::broker {

// ---- Attempt log (TaskRecord::attempt_log)

// Opens the entry of attempt `attempt` on `worker_id`. An entry still open (a broker restart lost
// the end of that attempt) is closed first as worker_lost; the last entry, when it is this very
// attempt on this worker (its lease given back), is opened again instead. The oldest entries go
// beyond proto::kMaxAttemptLog.
void OpenAttempt(std::vector<proto::AttemptEntry>* log, uint32_t attempt,
                 const std::string& worker_id, Time now);
// Closes the open entry, if any, with `outcome` (completed, failed, timeout, worker_lost,
// cancelled, requeued); the error is cut to proto::kMaxAttemptErrorBytes. Nothing open: no-op.
void CloseAttempt(std::vector<proto::AttemptEntry>* log, Time now, std::string_view outcome,
                  const std::string& error_code, const std::string& error);
// (The log's column text is pg_values.h's AttemptLogJson / ParseAttemptLog.)

// ---- Task browser (LIST)

// Where a page starts: after the task with this creation time and id, in the order created_at
// DESC, task_id DESC. Creation times are in microseconds, the store's precision.
struct ListCursor {
  int64_t created_us = 0;
  uint64_t task_id = 0;
  bool operator==(const ListCursor&) const = default;
};
// "<created_us>.<task_id>" in decimal: opaque to clients, short (< proto kMaxCursorBytes).
std::string EncodeCursor(const ListCursor& c);
Result<ListCursor> DecodeCursor(std::string_view text);

// A LIST's filters, checked: the status parsed, the owner to match (nullopt: any; an admin's
// `account`, or a non-admin's own account) and the cursor decoded.
struct ListFilter {
  std::string service;
  std::optional<proto::TaskStatus> status;
  std::optional<std::string> owner;
  std::string worker_id;
  std::string error_code;
  int64_t since_us = 0;  // 0: any
  int64_t until_us = 0;  // 0: any
  std::optional<ListCursor> after;
  uint32_t limit = 100;  // 1..kMaxListLimit
};
inline constexpr uint32_t kMaxListLimit = 1000;
Result<ListFilter> ParseListFilter(const proto::List& list);
// Whether a task passes the filter (the cursor included).
bool Matches(const ListFilter& f, const TaskRecord& t);
// Where a task is in the list order, as a cursor.
ListCursor CursorOf(const TaskRecord& t);
// a comes before b in the list order (newest first).
bool ListsBefore(const ListCursor& a, const ListCursor& b);

// ---- Worker page: connection history

struct ConnectionEvent {
  Time at{};
  std::string event;  // connected | disconnected | drained | undrained | banned
  std::string detail;
};
inline constexpr size_t kMaxConnectionEvents = 50;
// Adds an event, dropping the oldest beyond kMaxConnectionEvents (the detail is cut to 200 bytes).
void NoteConnection(std::deque<ConnectionEvent>* events, Time at, std::string_view event,
                    std::string_view detail);

// ---- History charts (service_stats_minute rows into buckets)

struct HistoryRange {
  std::string name;  // 1h | 24h | 7d
  int64_t step_s = 60;
  int points = 60;
};
Result<HistoryRange> ParseHistoryRange(std::string_view name);

// One point of a chart (GET /api/admin/history); a percentile is nullopt when no sample fell in.
struct HistoryPoint {
  Time at{};  // start of the bucket
  uint64_t submitted = 0, completed = 0, failed = 0, dead = 0;
  double throughput_per_s = 0;
  std::optional<double> queue_wait_p50_ms, queue_wait_p99_ms, run_time_p50_ms, run_time_p99_ms;
  int64_t queue_depth = 0;
};
// The chart's points, oldest first, the last bucket holding `now`: counts add up; percentiles are
// the sample-weighted mean of the minutes' (an approximation: exact ones need the histograms);
// queue_depth is the last recorded minute's of the bucket, summed over services. A bucket without
// rows has zeros and no percentiles.
std::vector<HistoryPoint> BucketHistory(const HistoryRange& range, Time now,
                                        const std::vector<ServiceMinuteStats>& minutes);

}  // namespace rma::broker
