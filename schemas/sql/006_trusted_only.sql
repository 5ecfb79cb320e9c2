-- rma schema, migration 6: a task may be for trusted workers only (SUBMIT's `trusted_only`, or its
-- service's catalog entry; docs/architecture.md "Reputation"), also after the broker restarts.

ALTER TABLE tasks ADD COLUMN trusted_only boolean NOT NULL DEFAULT false;
