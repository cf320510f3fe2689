-- The log: one row per event, never updated or deleted in normal operation.
-- (tenant_id, job_id, version) is unique, so two writers can never both extend one
-- job's history from the same state.
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    tenant_id TEXT    NOT NULL,
    job_id    TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    type      TEXT    NOT NULL,
    data      BLOB    NOT NULL
);
CREATE UNIQUE INDEX events_by_job ON events (tenant_id, job_id, version);

-- The projection: each job's state as folded from the log, updated in the same
-- transaction as the append. `state` is the whole JobInfo; the other columns are the
-- parts dequeue and maintenance search on. Times are microseconds since the epoch, UTC.
CREATE TABLE jobs (
    enqueue_seq      INTEGER PRIMARY KEY,
    tenant_id        TEXT    NOT NULL,
    job_id           TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    queue            TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    job_type         TEXT    NOT NULL,
    run_at           INTEGER NOT NULL,
    lease_expires_at INTEGER,
    idempotency_key  TEXT,
    version          INTEGER NOT NULL,
    state            BLOB    NOT NULL
);
CREATE UNIQUE INDEX jobs_by_id ON jobs (tenant_id, job_id);
CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Dequeue order within one (tenant, queue, priority): earliest run_at, then FIFO.
CREATE INDEX jobs_ready ON jobs (tenant_id, queue, priority, run_at, enqueue_seq)
    WHERE status = 'enqueued';
CREATE INDEX jobs_schedule ON jobs (queue, run_at) WHERE status = 'enqueued';
CREATE INDEX jobs_leases ON jobs (tenant_id, lease_expires_at) WHERE status = 'leased';
