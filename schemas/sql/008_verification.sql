-- rma schema, migration 8: verification by replication (issue 17, docs/architecture.md
-- "Verification"). A sampled task runs on two workers of different accounts and completes only when
-- their results agree; both agreeing workers earn, the submitter pays once. So the ledger allows one
-- earned row per accepted attempt (not per task) and keeps one spent row per task; and a task
-- remembers whether its result was verified.

DROP INDEX IF EXISTS credit_ledger_task_idx;
-- Exactly once per accepted attempt: a result recorded twice (a duplicate RESULT, a retried commit, a
-- restarted broker) counts once.
CREATE UNIQUE INDEX credit_ledger_earned_attempt_idx ON credit_ledger (task_id, attempt)
  WHERE task_id IS NOT NULL AND kind = 'earned';
-- The submitter pays once per task, whichever attempts earned.
CREATE UNIQUE INDEX credit_ledger_spent_task_idx ON credit_ledger (task_id)
  WHERE task_id IS NOT NULL AND kind = 'spent';

-- True when the result was returned by two workers of different accounts that agreed.
ALTER TABLE tasks ADD COLUMN verified boolean NOT NULL DEFAULT false;
