-- rma schema, migration 9: broker high availability (issue 18, docs/operations.md "High
-- availability"). Several brokers started with --ha share one database; the one holding this
-- lease leads. Its epoch grows by one at every takeover, and every write transaction of the leader's
-- store calls rma_fence(its epoch) first: once another broker holds a newer epoch, the old leader's
-- writes fail (SQLSTATE RM001) instead of overwriting the new leader's work. Times are the
-- database's (clock_timestamp()), so the brokers' clocks never need to agree.

CREATE TABLE broker_lease (
  id                smallint PRIMARY KEY CHECK (id = 1),  -- one row: one pool per database
  epoch             bigint NOT NULL,
  holder            text NOT NULL,          -- the leading process (host, pid, instance)
  workers_endpoint  text NOT NULL DEFAULT '',  -- where the leader serves, told to peers by standbys
  clients_endpoint  text NOT NULL DEFAULT '',
  acquired_at       timestamptz,
  expires_at        timestamptz NOT NULL    -- renewed by the leader; past it, a standby may take over
);
INSERT INTO broker_lease (id, epoch, holder, expires_at) VALUES (1, 0, '', '-infinity');

-- Locks the lease row against a takeover for the rest of the calling transaction (FOR SHARE: a
-- standby's UPDATE waits for this transaction to end), and fails it when `mine` is no longer the
-- epoch on record.
CREATE FUNCTION rma_fence(mine bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM broker_lease WHERE id = 1 AND epoch = mine FOR SHARE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'fenced: broker epoch % is no longer the leader''s', mine
      USING ERRCODE = 'RM001';
  END IF;
END
$$;

-- The account tables are written by account actions (the reader's own transactions) as well as by
-- the group commit: each statement on them is fenced with the session's rma.epoch, which a broker
-- with --ha sets on its sessions. Sessions without it (no --ha, tools, tests) are not fenced.
CREATE FUNCTION rma_fence_session() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  mine text := current_setting('rma.epoch', true);
BEGIN
  IF mine IS NOT NULL AND mine <> '' THEN
    PERFORM rma_fence(mine::bigint);
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER rma_fence BEFORE INSERT OR UPDATE OR DELETE ON accounts
  FOR EACH STATEMENT EXECUTE FUNCTION rma_fence_session();
CREATE TRIGGER rma_fence BEFORE INSERT OR UPDATE OR DELETE ON api_keys
  FOR EACH STATEMENT EXECUTE FUNCTION rma_fence_session();
CREATE TRIGGER rma_fence BEFORE INSERT OR UPDATE OR DELETE ON enrol_tokens
  FOR EACH STATEMENT EXECUTE FUNCTION rma_fence_session();
CREATE TRIGGER rma_fence BEFORE INSERT OR UPDATE OR DELETE ON worker_credentials
  FOR EACH STATEMENT EXECUTE FUNCTION rma_fence_session();
CREATE TRIGGER rma_fence BEFORE INSERT OR UPDATE OR DELETE ON credit_ledger
  FOR EACH STATEMENT EXECUTE FUNCTION rma_fence_session();
