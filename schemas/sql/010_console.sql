-- rma schema, migration 10: the operator's console (issue 19, docs/http-api.md "Console").
--
-- tasks.attempt_log: every attempt's start and end (worker, times, outcome, error), oldest first,
-- as a JSON array of at most 64 entries. It is written with the row's other mutable columns in the
-- group commit's existing UPDATE (no row per attempt, no new index): NULL until the first start.
ALTER TABLE tasks ADD COLUMN attempt_log jsonb;

-- service_stats_minute.queue_depth: the service's queue depth at the end of the minute (the last
-- value the broker recorded for it), for the console's history charts. NULL in rows written before.
ALTER TABLE service_stats_minute ADD COLUMN queue_depth bigint;

-- No new index: the console's filters (worker, error code, time range, cursor) ride on the
-- existing ones (tasks_created_idx, tasks_service_idx, tasks_rare_status_idx for the dead letters,
-- tasks_owner_idx), and every index would slow the group commit's hot write path.
