-- rma schema, migration 3: accounts, API keys, enrolment tokens and worker credentials (issue 13).
-- The broker owns these tables; the gateways learn the keys through the broker, never from here.
-- Secrets are never stored: an API key and an enrolment token are kept as the SHA-256 of the whole
-- string (hex), with a short prefix to name a key in listings and revocations.

CREATE TABLE accounts (
  name        text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
  role        text NOT NULL CHECK (role IN ('admin', 'member')),
  -- Credits (a later migration adds the ledger); numeric so fractions of a compute second add up.
  credits     numeric NOT NULL DEFAULT 0,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
  prefix        text PRIMARY KEY,
  hash          text NOT NULL UNIQUE,
  account       text NOT NULL REFERENCES accounts (name),
  name          text NOT NULL DEFAULT '',
  scopes        text[] NOT NULL,
  services      text[],                 -- NULL: every service
  expires_at    timestamptz,            -- NULL: never
  revoked_at    timestamptz,
  last_used_at  timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  CHECK (scopes <@ ARRAY['client', 'admin', 'contributor']::text[] AND cardinality(scopes) > 0)
);
CREATE INDEX api_keys_account_idx ON api_keys (account);

CREATE TABLE enrol_tokens (
  hash        text PRIMARY KEY,
  account     text NOT NULL REFERENCES accounts (name),
  expires_at  timestamptz NOT NULL,
  used_at     timestamptz,
  used_by     text,                      -- the worker key it enrolled
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX enrol_tokens_account_idx ON enrol_tokens (account);

CREATE TABLE worker_credentials (
  public_key  text PRIMARY KEY,          -- Z85, 40 characters
  account     text NOT NULL REFERENCES accounts (name),
  name        text NOT NULL DEFAULT '',
  worker_id   text NOT NULL DEFAULT '',  -- the id it last registered with
  services    text[],                    -- NULL: any service
  tier_cap    integer NOT NULL DEFAULT 0 CHECK (tier_cap BETWEEN 0 AND 3),  -- 0: no cap
  revoked_at  timestamptz,
  first_seen  timestamptz NOT NULL DEFAULT now(),
  last_seen   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX worker_credentials_account_idx ON worker_credentials (account);
CREATE INDEX worker_credentials_worker_idx ON worker_credentials (worker_id);
