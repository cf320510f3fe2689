-- Tamper evidence: each event's hash links it to the previous event of its tenant
-- (see dogqueue/log/chain.py). Events written before this migration get their hashes
-- when the database is opened (dogqueue/backend/sqlite/chain.py backfills NULLs).
ALTER TABLE events ADD COLUMN hash BLOB;

-- The latest hash of each tenant's chain, so that an append costs one lookup per tenant
-- per transaction. Derived: `dogqueue verify` recomputes it from the log.
CREATE TABLE chain_heads (
    tenant_id TEXT    PRIMARY KEY,
    seq       INTEGER NOT NULL,
    hash      BLOB    NOT NULL
) WITHOUT ROWID;

-- Archival moves whole job histories to another file. An anchor keeps the hash of a
-- moved event that an event left behind still links to (its tenant's previous event, or
-- its tenant's head), so that each file's chain still verifies on its own.
CREATE TABLE chain_anchors (
    seq       INTEGER PRIMARY KEY,
    tenant_id TEXT    NOT NULL,
    hash      BLOB    NOT NULL
);

-- One row per archival: what was cut from this log and where it went.
CREATE TABLE archive_cuts (
    id             INTEGER PRIMARY KEY,
    archived_at    INTEGER NOT NULL,
    cut_before     INTEGER NOT NULL,
    archive        TEXT    NOT NULL,
    jobs           INTEGER NOT NULL,
    events         INTEGER NOT NULL,
    -- The hash of the last event moved.
    head_hash      BLOB    NOT NULL,
    -- The archive file as it stood after this cut: its events, and SHA-256 over the
    -- (seq, hash) of all of them in log order.
    archive_events INTEGER NOT NULL,
    archive_digest BLOB    NOT NULL
);

-- Log positions moved out by archival, as inclusive ranges: a gap in `seq` that no range
-- covers is a deleted event.
CREATE TABLE archived_ranges (
    first_seq INTEGER PRIMARY KEY,
    last_seq  INTEGER NOT NULL
);
