-- rma schema, migration 2: tasks belong to the account that submitted them, and task ids are random
-- (64 unpredictable bits, so nobody can guess another client's task): listings and recovery order by
-- creation time instead of by id.

-- The submitting account ('' for an anonymous pool). Only it (or an admin) sees the task.
ALTER TABLE tasks ADD COLUMN owner text NOT NULL DEFAULT '';

-- Idempotency keys are unique per owner: one account's key never names another account's task.
DROP INDEX tasks_idempotency_key_idx;
CREATE UNIQUE INDEX tasks_owner_key_idx ON tasks (owner, idempotency_key)
  WHERE idempotency_key IS NOT NULL;

-- Recovery: unfinished tasks in priority order, oldest first within a priority.
DROP INDEX tasks_unfinished_idx;
CREATE INDEX tasks_unfinished_idx ON tasks (priority DESC, created_at, task_id)
  WHERE status IN ('queued', 'running', 'failed');

-- Listing newest first: by service, by rare status, by owner, and all of them.
DROP INDEX tasks_service_idx;
CREATE INDEX tasks_service_idx ON tasks (service, created_at DESC);
DROP INDEX tasks_rare_status_idx;
CREATE INDEX tasks_rare_status_idx ON tasks (status, created_at DESC)
  WHERE status IN ('failed', 'dead', 'cancelled', 'expired');
CREATE INDEX tasks_owner_idx ON tasks (owner, created_at DESC);
CREATE INDEX tasks_created_idx ON tasks (created_at DESC);
