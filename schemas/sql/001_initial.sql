-- rma schema, migration 1: workers, tasks and per-minute statistics.
-- Applied by rma-broker at start inside one transaction and recorded in rma_migrations.
-- Migrations are append-only: a released file never changes; later changes come as 002_..., 003_...

CREATE TABLE rma_migrations (
  version    integer PRIMARY KEY,
  name       text        NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per worker identity ever seen; updated as it registers, changes its manifest, leaves.
CREATE TABLE workers (
  worker_id    text PRIMARY KEY,
  name         text        NOT NULL,
  tier         smallint    NOT NULL CHECK (tier BETWEEN 1 AND 3),
  simulated    boolean     NOT NULL DEFAULT false,
  capabilities jsonb       NOT NULL DEFAULT '{}'::jsonb,
  services     text[]      NOT NULL DEFAULT '{}',
  status       text        NOT NULL CHECK (status IN ('online', 'draining', 'offline')),
  first_seen   timestamptz NOT NULL,
  last_seen    timestamptz NOT NULL,
  tasks_done   bigint      NOT NULL DEFAULT 0,
  tasks_failed bigint      NOT NULL DEFAULT 0,
  busy_seconds double precision NOT NULL DEFAULT 0
);

-- Every accepted asynchronous task (synchronous calls are not recorded).
CREATE TABLE tasks (
  task_id             bigint PRIMARY KEY,
  service             text        NOT NULL,
  status              text        NOT NULL
    CHECK (status IN ('queued', 'running', 'completed', 'failed', 'dead', 'cancelled', 'expired')),
  priority            smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
  payload             bytea       NOT NULL DEFAULT '\x',
  content_type        text        NOT NULL DEFAULT '',
  max_attempts        integer     NOT NULL,
  timeout_ms          bigint      NOT NULL,
  idempotency_key     text,
  min_tier            smallint    NOT NULL DEFAULT 0,
  min_gpu_memory_gb   double precision NOT NULL DEFAULT 0,
  attempts            integer     NOT NULL DEFAULT 0,
  failures            integer     NOT NULL DEFAULT 0,
  requeues            integer     NOT NULL DEFAULT 0,
  worker_id           text,
  result              bytea,
  result_content_type text,
  http_status         integer,
  error               text,
  error_code          text,
  created_at          timestamptz NOT NULL,
  run_at              timestamptz NOT NULL,
  started_at          timestamptz,
  completed_at        timestamptz
);

-- Recovery: unfinished tasks in priority order, FIFO within a priority.
CREATE INDEX tasks_unfinished_idx ON tasks (priority DESC, task_id)
  WHERE status IN ('queued', 'running', 'failed');
-- Listing newest first (task ids grow with time): by service (a status filter rides along), and all tasks
-- through the primary key. By status: completed tasks, the bulk, through the primary key; queued and running
-- ones through tasks_unfinished_idx; the rare rest through a partial index that most tasks never enter. Few
-- index entries on purpose: every state change of a task writes one in each index that holds it.
CREATE INDEX tasks_service_idx ON tasks (service, task_id DESC);
CREATE INDEX tasks_rare_status_idx ON tasks (status, task_id DESC)
  WHERE status IN ('failed', 'dead', 'cancelled', 'expired');
-- Idempotency keys are unique across all retained tasks.
CREATE UNIQUE INDEX tasks_idempotency_key_idx ON tasks (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Retention deletes finished tasks oldest first.
CREATE INDEX tasks_completed_at_idx ON tasks (completed_at) WHERE completed_at IS NOT NULL;

-- Per-minute aggregates per service (synchronous calls included), written by the broker's store thread
-- once each minute ends. Percentiles are estimated from histogram buckets; the sample counts let two rows of
-- one minute (a broker restarted within it) be merged.
CREATE TABLE service_stats_minute (
  minute             timestamptz NOT NULL,
  service            text        NOT NULL,
  submitted          bigint      NOT NULL DEFAULT 0,
  completed          bigint      NOT NULL DEFAULT 0,
  failed             bigint      NOT NULL DEFAULT 0,
  dead               bigint      NOT NULL DEFAULT 0,
  queue_wait_samples bigint      NOT NULL DEFAULT 0,
  queue_wait_p50_ms  double precision,
  queue_wait_p99_ms  double precision,
  run_time_samples   bigint      NOT NULL DEFAULT 0,
  run_time_p50_ms    double precision,
  run_time_p99_ms    double precision,
  PRIMARY KEY (minute, service)
);
CREATE INDEX service_stats_minute_service_idx ON service_stats_minute (service, minute DESC);
