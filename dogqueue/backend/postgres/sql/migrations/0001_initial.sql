-- The log: one row per event, never updated or deleted in normal operation. `seq` is
-- drawn from a sequence when the event is written: it identifies the event and orders
-- jobs FIFO, but has gaps and commits out of order. `xid` is the writing transaction;
-- the sequencer reads events in (xid, seq) order once no older transaction is running.
CREATE SEQUENCE event_seq;
CREATE TABLE events (
    seq       bigint  PRIMARY KEY,
    xid       xid8    NOT NULL DEFAULT pg_current_xact_id(),
    tenant_id text    NOT NULL,
    job_id    text    NOT NULL,
    version   integer NOT NULL,
    type      text    NOT NULL,
    data      bytea   NOT NULL,
    -- Two writers can never both extend one job's history from the same state.
    UNIQUE (tenant_id, job_id, version)
);
CREATE INDEX events_by_commit ON events (xid, seq);

-- The projection, updated in the same transaction as the append. Times are
-- microseconds since the epoch, UTC. Every update is guarded by `version`.
CREATE TABLE jobs (
    enqueue_seq      bigint   PRIMARY KEY,
    tenant_id        text     NOT NULL,
    job_id           text     NOT NULL,
    status           text     NOT NULL,
    queue            text     NOT NULL,
    priority         smallint NOT NULL,
    job_type         text     NOT NULL,
    run_at           bigint   NOT NULL,
    lease_expires_at bigint,
    idempotency_key  text,
    version          integer  NOT NULL,
    state            bytea    NOT NULL,
    UNIQUE (tenant_id, job_id)
) WITH (fillfactor = 70);
CREATE UNIQUE INDEX jobs_by_idempotency_key ON jobs (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Dequeue order within one (tenant, queue): priority, earliest run_at, then FIFO.
CREATE INDEX jobs_ready ON jobs (tenant_id, queue, priority DESC, run_at, enqueue_seq)
    WHERE status = 'enqueued';
CREATE INDEX jobs_schedule ON jobs (queue, run_at) WHERE status = 'enqueued';
CREATE INDEX jobs_leases ON jobs (tenant_id, lease_expires_at) WHERE status = 'leased';

-- Positions, written by the sequencer only: a dense, commit-ordered `pos` over the
-- whole log, a dense `tpos` per tenant, and each event's link in its tenant's chain.
CREATE TABLE log (
    pos       bigint PRIMARY KEY,
    seq       bigint NOT NULL UNIQUE,
    tenant_id text   NOT NULL,
    tpos      bigint NOT NULL,
    hash      bytea  NOT NULL,
    UNIQUE (tenant_id, tpos)
);
-- The sequencer's cursor: every event at or before (cursor_xid, cursor_seq) that will
-- ever commit has been looked at.
CREATE TABLE log_head (
    id         integer PRIMARY KEY CHECK (id = 1),
    last_pos   bigint  NOT NULL,
    cursor_xid xid8    NOT NULL,
    cursor_seq bigint  NOT NULL
);
INSERT INTO log_head (id, last_pos, cursor_xid, cursor_seq) VALUES (1, 0, '0', 0);
-- The latest link of each tenant's chain. Derived: `dogqueue verify` recomputes it.
CREATE TABLE chain_heads (
    tenant_id text   PRIMARY KEY,
    pos       bigint NOT NULL,
    tpos      bigint NOT NULL,
    hash      bytea  NOT NULL
);
