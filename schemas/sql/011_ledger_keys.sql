-- rma schema, migration 11: one index entry fewer per credit ledger row (issue 16, docs/benchmarks.md
-- "Credits"). The group commit writes a ledger row for every completed task, and each index entry
-- costs the commit about a microsecond a row. The primary key becomes (account, id), which also
-- serves everything the separate (account, at) index served: an account's rows (GET /api/account
-- sums them all and lists its latest 50 by id). id stays unique on its own (a sequence).
ALTER TABLE credit_ledger DROP CONSTRAINT credit_ledger_pkey;
ALTER TABLE credit_ledger ADD PRIMARY KEY (account, id);
DROP INDEX credit_ledger_account_idx;
