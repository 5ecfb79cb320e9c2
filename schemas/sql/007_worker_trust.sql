-- rma schema, migration 7: worker credentials' lasting trust states (issue 17, docs/architecture.md
-- "Reputation"): what an admin said (trusted, quarantined, banned) and the quarantines the
-- reputation rules decided, so that a restarted broker neither forgets a ban nor lets a quarantined
-- liar back in. A credential back to normal has no row.

CREATE TABLE worker_trust (
  credential  text PRIMARY KEY,              -- the worker's CURVE key, or 'id:' || its worker id
  account     text NOT NULL DEFAULT '',
  state       text NOT NULL CHECK (state IN ('trusted', 'quarantined', 'banned')),
  reason      text NOT NULL DEFAULT '',
  updated_at  timestamptz NOT NULL DEFAULT now()
);
