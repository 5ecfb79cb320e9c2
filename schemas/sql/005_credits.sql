-- rma schema, migration 5: the credit ledger (issue 16, docs/accounts.md "Credits").
-- One append-only row per change of an account's balance. accounts.credits is the sum of the
-- account's rows at every commit: each row is inserted in the same statement that adds its amount
-- to the balance, and only when the insert happened (ON CONFLICT DO NOTHING), so a result recorded
-- twice (a duplicate RESULT, a retried commit, a broker restarted mid-way) counts once.

CREATE TABLE credit_ledger (
  id          bigserial PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT now(),
  -- No foreign key: its check is a trigger per row that costs as much as the row itself; the
  -- broker's insert joins accounts instead, and accounts are never deleted.
  account     text NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('earned', 'spent', 'uptime', 'grant', 'adjustment')),
  amount      numeric NOT NULL,          -- signed: spent rows are negative
  task_id     bigint,                    -- earned, spent: the task (its accepted attempt)
  attempt     integer,
  worker_id   text NOT NULL DEFAULT '',  -- earned, uptime: the worker that did it
  service     text NOT NULL DEFAULT '',
  compute_s   double precision NOT NULL DEFAULT 0,
  note        text NOT NULL DEFAULT ''
);
-- Exactly once per task: one row earned by the worker's account, one spent by the submitter's.
CREATE UNIQUE INDEX credit_ledger_task_idx ON credit_ledger (task_id, kind) WHERE task_id IS NOT NULL;
-- An account's rows (GET /api/account), and the leaderboard's rows of a period.
CREATE INDEX credit_ledger_account_idx ON credit_ledger (account, at);
CREATE INDEX credit_ledger_earned_idx ON credit_ledger (at) WHERE kind = 'earned';
