-- rma schema, migration 4: a task may name a model (SUBMIT's `model`, docs/protocol.md §6.1); only a
-- worker whose service lists that model may run it, also after the broker restarts.

-- '' for a task of any worker of its service.
ALTER TABLE tasks ADD COLUMN model text NOT NULL DEFAULT '';
