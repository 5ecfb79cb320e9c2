// Records the scheduler hands to persistence. The scheduler produces them on the broker loop
// thread; the store consumes them on its own thread (they are plain values, moved across). See
// store.h.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/clock.h"
#include "protocol/ids.h"
#include "protocol/messages.h"

namespace rma::broker {

// Everything durable about a task: the store's row, and the part of the scheduler's task that
// survives a restart (Scheduler::Task extends it). Payload and result are shared Bytes, so handing
// a record to the store copies neither; an update's payload is not written again (it never
// changes).
struct TaskRecord {
  TaskId id;
  std::string service;
  Bytes payload;
  std::string content_type;
  uint32_t priority = 0;
  uint32_t max_attempts = 0;
  uint32_t timeout_ms = 0;
  std::string idempotency_key;  // unique per owner
  std::string owner;            // the account that submitted it ("" = anonymous)
  uint32_t min_tier = 0;
  double min_gpu_memory_gb = 0;
  std::string model;          // "": any worker of the service; else only one whose service lists it
  bool trusted_only = false;  // only workers an admin marked trusted may run it
  // The result was returned by two workers of different accounts that agreed (verification).
  bool verified = false;
  proto::TaskStatus status = proto::TaskStatus::kQueued;
  uint32_t attempts = 0;
  uint32_t failures = 0;
  uint32_t requeues = 0;
  std::string worker_id;
  Bytes result;
  std::string result_content_type;
  uint32_t http_status = 0;
  std::string error;
  std::string error_code;
  Time created_at{};
  Time run_at{};
  Time started_at{};    // epoch 0 = never
  Time completed_at{};  // epoch 0 = not ended
  // Every attempt's start and end, oldest first, at most proto::kMaxAttemptLog (the newest kept):
  // the task page's attempt log, written with the row (the `attempt_log` column).
  std::vector<proto::AttemptEntry> attempt_log;
};

// The public view of a task (TASK_INFO, TASK_LIST, the HTTP task object) from its record. Listings
// leave the result out.
proto::TaskView ViewOf(const TaskRecord& r, bool with_result);
// What a GET with `detail` adds to the view: the payload, both sizes and the attempt log.
void AddDetail(const TaskRecord& r, proto::TaskView* v);

enum class WriteKind : uint8_t { kInsert, kUpdate, kDelete };

struct TaskWrite {
  WriteKind kind = WriteKind::kInsert;
  TaskRecord record;
};

// One row of the credit ledger (schemas/sql/005_credits.sql; credits.h makes them). Written in the
// store's group commit with the task writes of the same loop iteration, so a task's completion and
// what it earned and cost are recorded together or not at all.
struct LedgerEntry {
  std::string account;
  std::string kind;   // earned | spent | uptime | grant | adjustment
  double amount = 0;  // signed: spent is negative; rounded to micro-credits
  TaskId task_id;     // 0 for uptime, grant and adjustment
  uint32_t attempt = 0;
  std::string worker_id;
  std::string service;
  double compute_s = 0;
  std::string note;
  Time at{};
};

// What an account's workers earned for one service recently (earned ledger rows), each row's amount
// halved for every contribution half-life since it was written: read at start, so donor priority
// (Scheduler::SeedContributions) survives a restart.
struct RecentEarnings {
  std::string account;
  std::string service;
  double amount = 0;  // decayed to the time of the read
};

// A lasting word on a worker credential's reputation (docs/architecture.md, "Reputation"): an
// admin's trust, or a quarantine the rules decided, kept across restarts. `state` is "trusted",
// "quarantined" or "banned"; "" removes the record (the credential is back to normal).
struct TrustRecord {
  std::string credential;  // reputation key: the CURVE key, or "id:" + worker id
  std::string account;
  std::string state;
  std::string reason;
  Time at{};
};

// What the store keeps about a worker.
struct WorkerRecord {
  std::string worker_id;
  std::string name;
  uint32_t tier = 3;
  bool simulated = false;
  proto::Capabilities capabilities;
  std::vector<std::string> services;
  std::string status;  // "online", "draining", "offline"
  Time first_seen{};
  Time last_seen{};
  uint64_t tasks_done = 0;
  uint64_t tasks_failed = 0;
  double busy_seconds = 0;
};

// One minute of one service's statistics (a row of service_stats_minute). The broker loop derives
// them from the scheduler's counters (stats_recorder.h); synchronous calls are included.
struct ServiceMinuteStats {
  Time minute{};  // start of the minute, UTC
  std::string service;
  uint64_t submitted = 0;
  uint64_t completed = 0;
  uint64_t failed = 0;  // failed attempts (each retry counts)
  uint64_t dead = 0;
  uint64_t queue_wait_samples = 0;
  double queue_wait_p50_ms = 0;
  double queue_wait_p99_ms = 0;
  uint64_t run_time_samples = 0;
  double run_time_p50_ms = 0;
  double run_time_p99_ms = 0;
  // The service's queue depth at the end of the minute (the last value recorded); -1: none.
  int64_t queue_depth = -1;

  // Folds in another row of the same minute and service: counts add, p50 is the sample-weighted
  // mean and p99 the larger (an estimate; exact merging would need the histograms). The SQL upsert
  // in pg_store.cc applies the same rule.
  void Merge(const ServiceMinuteStats& other);
};

// What the record holds about the statistics (PostgreSQL mode): read by the store's thread, merged
// by the loop into the stats document it builds from memory (admin.h, ApplyStoredStats).
struct StoredStats {
  Time day_start{};
  std::vector<ServiceMinuteStats> today;    // per service, since day_start (`minute` unused)
  std::vector<ServiceMinuteStats> history;  // per minute, all services together, oldest first
};

}  // namespace rma::broker
