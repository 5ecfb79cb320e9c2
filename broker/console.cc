// See console.h.
#include "broker/console.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>

namespace rma::broker {

namespace {

// Cut at a UTF-8 character boundary, so the cut text stays valid UTF-8 for JSON and PostgreSQL.
std::string Cut(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return std::string(s.substr(0, n));
}

template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

}  // namespace

void OpenAttempt(std::vector<proto::AttemptEntry>* log, uint32_t attempt,
                 const std::string& worker_id, Time now) {
  if (!log->empty() && log->back().attempt == attempt && log->back().worker_id == worker_id) {
    // The same attempt given back to its worker (it still ran it across a reconnect or a broker
    // restart): the entry is open again, not a new attempt.
    proto::AttemptEntry& e = log->back();
    e.ended_at_ms = 0;
    e.outcome = "running";
    e.error_code.clear();
    e.error.clear();
    return;
  }
  CloseAttempt(log, now, "worker_lost", "worker_lost", "the broker lost track of this attempt");
  if (log->size() >= proto::kMaxAttemptLog) {
    log->erase(log->begin(),
               log->begin() + static_cast<std::ptrdiff_t>(log->size() - proto::kMaxAttemptLog + 1));
  }
  proto::AttemptEntry e;
  e.attempt = attempt;
  e.worker_id = worker_id;
  e.started_at_ms = ToUnixMs(now);
  e.outcome = "running";
  log->push_back(std::move(e));
}

void CloseAttempt(std::vector<proto::AttemptEntry>* log, Time now, std::string_view outcome,
                  const std::string& error_code, const std::string& error) {
  if (log->empty() || log->back().outcome != "running") return;
  proto::AttemptEntry& e = log->back();
  e.ended_at_ms = ToUnixMs(now);
  e.outcome = std::string(outcome);
  e.error_code = Cut(error_code, 64);
  e.error = Cut(error, proto::kMaxAttemptErrorBytes);
}

std::string EncodeCursor(const ListCursor& c) {
  return std::to_string(c.created_us) + "." + std::to_string(c.task_id);
}

Result<ListCursor> DecodeCursor(std::string_view text) {
  const Status bad = Status::InvalidArgument("'cursor' is not a cursor of this list");
  if (text.size() > 48) return bad;
  size_t dot = text.find('.');
  if (dot == std::string_view::npos) return bad;
  ListCursor c;
  if (!ParseNumber(text.substr(0, dot), &c.created_us) ||
      !ParseNumber(text.substr(dot + 1), &c.task_id) || c.created_us < 0) {
    return bad;
  }
  return c;
}

Result<ListFilter> ParseListFilter(const proto::List& list) {
  ListFilter f;
  f.service = list.service;
  if (!list.status.empty()) {
    f.status = proto::ParseTaskStatus(list.status);
    if (!f.status) return Status::InvalidArgument("unknown status '" + list.status + "'");
  }
  if (!list.admin) {
    if (!list.account.empty() && list.account != list.owner) {
      return Status::PermissionDenied("only an admin may list another account's tasks");
    }
    f.owner = list.owner;
  } else if (!list.account.empty()) {
    f.owner = list.account;
  }
  f.worker_id = list.worker_id;
  f.error_code = list.error_code;
  if (list.since_ms < 0 || list.until_ms < 0) {
    return Status::InvalidArgument("'since' and 'until' must not be before 1970");
  }
  f.since_us = list.since_ms * 1000;
  f.until_us = list.until_ms * 1000;
  if (!list.cursor.empty()) {
    RMA_ASSIGN_OR_RETURN(ListCursor c, DecodeCursor(list.cursor));
    f.after = c;
  }
  f.limit = std::clamp<uint32_t>(list.limit == 0 ? 100 : list.limit, 1, kMaxListLimit);
  return f;
}

ListCursor CursorOf(const TaskRecord& t) { return {ToUnixUs(t.created_at), t.id.value()}; }

bool ListsBefore(const ListCursor& a, const ListCursor& b) {
  return a.created_us != b.created_us ? a.created_us > b.created_us : a.task_id > b.task_id;
}

bool Matches(const ListFilter& f, const TaskRecord& t) {
  if (!f.service.empty() && t.service != f.service) return false;
  if (f.status && t.status != *f.status) return false;
  if (f.owner && t.owner != *f.owner) return false;
  if (!f.worker_id.empty() && t.worker_id != f.worker_id) return false;
  if (!f.error_code.empty() && t.error_code != f.error_code) return false;
  const int64_t created = ToUnixUs(t.created_at);
  if (f.since_us != 0 && created < f.since_us) return false;
  if (f.until_us != 0 && created >= f.until_us) return false;
  if (f.after && !ListsBefore(*f.after, CursorOf(t))) return false;
  return true;
}

void NoteConnection(std::deque<ConnectionEvent>* events, Time at, std::string_view event,
                    std::string_view detail) {
  events->push_back({at, std::string(event), Cut(detail, 200)});
  while (events->size() > kMaxConnectionEvents) events->pop_front();
}

Result<HistoryRange> ParseHistoryRange(std::string_view name) {
  if (name == "1h" || name.empty()) return HistoryRange{"1h", 60, 60};
  if (name == "24h") return HistoryRange{"24h", 15 * 60, 96};
  if (name == "7d") return HistoryRange{"7d", 2 * 3600, 84};
  return Status::InvalidArgument("'range' must be 1h, 24h or 7d");
}

std::vector<HistoryPoint> BucketHistory(const HistoryRange& range, Time now,
                                        const std::vector<ServiceMinuteStats>& minutes) {
  const int64_t step_ms = range.step_s * 1000;
  // Buckets aligned on the step (in UTC), the last one holding `now`.
  const int64_t last_start = ToUnixMs(now) / step_ms * step_ms;
  const int64_t first_start = last_start - (range.points - 1) * step_ms;
  struct Bucket {
    uint64_t submitted = 0, completed = 0, failed = 0, dead = 0;
    double qw50 = 0, qw99 = 0, rt50 = 0, rt99 = 0;  // sample-weighted sums
    uint64_t qw_samples = 0, rt_samples = 0;
    // The last minute of the bucket with a recorded depth, per service.
    std::map<std::string, std::pair<int64_t, int64_t>> depth;  // service -> (minute, depth)
  };
  std::vector<Bucket> buckets(static_cast<size_t>(range.points));
  for (const ServiceMinuteStats& s : minutes) {
    const int64_t minute_ms = ToUnixMs(s.minute);
    if (minute_ms < first_start || minute_ms >= last_start + step_ms) continue;
    Bucket& b = buckets[static_cast<size_t>((minute_ms - first_start) / step_ms)];
    b.submitted += s.submitted;
    b.completed += s.completed;
    b.failed += s.failed;
    b.dead += s.dead;
    const auto qw = static_cast<double>(s.queue_wait_samples);
    const auto rt = static_cast<double>(s.run_time_samples);
    b.qw50 += s.queue_wait_p50_ms * qw;
    b.qw99 += s.queue_wait_p99_ms * qw;
    b.rt50 += s.run_time_p50_ms * rt;
    b.rt99 += s.run_time_p99_ms * rt;
    b.qw_samples += s.queue_wait_samples;
    b.rt_samples += s.run_time_samples;
    if (s.queue_depth >= 0) {
      auto& [at, depth] = b.depth[s.service];
      if (minute_ms >= at) {
        at = minute_ms;
        depth = s.queue_depth;
      }
    }
  }
  auto percentile = [](double sum, uint64_t samples) -> std::optional<double> {
    if (samples == 0) return std::nullopt;
    return std::round(sum / static_cast<double>(samples) * 10) / 10;
  };
  std::vector<HistoryPoint> points;
  points.reserve(buckets.size());
  for (size_t i = 0; i < buckets.size(); ++i) {
    const Bucket& b = buckets[i];
    HistoryPoint p;
    p.at = FromUnixMs(first_start + static_cast<int64_t>(i) * step_ms);
    p.submitted = b.submitted;
    p.completed = b.completed;
    p.failed = b.failed;
    p.dead = b.dead;
    p.throughput_per_s =
        std::round(static_cast<double>(b.completed) / static_cast<double>(range.step_s) * 1000) /
        1000;
    p.queue_wait_p50_ms = percentile(b.qw50, b.qw_samples);
    p.queue_wait_p99_ms = percentile(b.qw99, b.qw_samples);
    p.run_time_p50_ms = percentile(b.rt50, b.rt_samples);
    p.run_time_p99_ms = percentile(b.rt99, b.rt_samples);
    for (const auto& [name, d] : b.depth) p.queue_depth += d.second;
    points.push_back(std::move(p));
  }
  return points;
}

}  // namespace rma::broker
