-- Every statement the read-only log reader runs, by name. Loaded by log.py.
-- Logs of earlier schema versions are read as they are: a `_v1` or `_v2` variant stands
-- in where a column is missing (no `hash` before version 2, no `tpos` before 3; tenant
-- positions are then numbered on the fly, as migration 0003 would).

-- name: schema_version
-- The schema version of the log file.
SELECT version FROM schema_version WHERE id = 1;

-- name: has_schema_version
-- Whether the file has a schema_version table (1: yes).
SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_version';

-- name: records
-- Cast: a tampered row may hold text where bytes belong; the verifier must still read it.
SELECT seq, tenant_id, job_id, version, type, CAST(data AS BLOB), CAST(hash AS BLOB), tpos
FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2;

-- name: records_v2
-- Tenant positions are counted by the reader (see tenant_counts).
SELECT seq, tenant_id, job_id, version, type, CAST(data AS BLOB), CAST(hash AS BLOB)
FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2;

-- name: records_v1
-- Log records after ?1 of a schema-1 log (no hashes, no tenant positions).
SELECT seq, tenant_id, job_id, version, type, CAST(data AS BLOB), NULL
FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2;

-- name: tenant_counts
-- Events per tenant up to position ?1.
SELECT tenant_id, count(*) FROM events WHERE seq <= ?1 GROUP BY tenant_id;

-- name: events
-- Events after position ?1, in log order.
SELECT seq, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2;

-- name: last_position
-- Positions moved out by archival count: they were given.
SELECT max(coalesce((SELECT max(seq) FROM events), 0),
           coalesce((SELECT max(last_seq) FROM archived_ranges), 0));

-- name: last_position_v1
-- The last log position of a log without a position memo.
SELECT coalesce(max(seq), 0) FROM events;

-- name: tenant_events
-- A tenant's events with their tenant positions.
SELECT tpos, data FROM events WHERE tenant_id = ?1 ORDER BY seq;

-- name: tenant_events_v2
-- A tenant's events, tenant positions numbered on the fly (schema < 3).
SELECT row_number() OVER (ORDER BY seq), data FROM events WHERE tenant_id = ?1 ORDER BY seq;

-- name: history
-- One job's events with their tenant positions, in version order.
SELECT tpos, data FROM events WHERE tenant_id = ?1 AND job_id = ?2 ORDER BY version;

-- name: history_v2
-- One job's events, tenant positions numbered on the fly (schema < 3).
SELECT tpos, data FROM (
    SELECT job_id, version, row_number() OVER (ORDER BY seq) AS tpos, data
    FROM events WHERE tenant_id = ?1)
WHERE job_id = ?2 ORDER BY version;

-- name: all_jobs
-- Every job's state, in enqueue order.
SELECT state, tenant_id, job_id FROM jobs ORDER BY enqueue_seq;

-- name: projection_rows
-- Every job row with its indexed columns, in enqueue order.
SELECT enqueue_seq, tenant_id, job_id, status, queue, priority, job_type, run_at,
       lease_expires_at, idempotency_key, version, state
FROM jobs ORDER BY enqueue_seq;

-- name: jobs_of_tenant
-- The tenant's view: each job with the tenant position of its enqueued event.
SELECT jobs.state, events.tpos, jobs.job_id FROM jobs
LEFT JOIN events ON events.tenant_id = jobs.tenant_id AND events.job_id = jobs.job_id
                 AND events.version = 1
WHERE jobs.tenant_id = ?1 ORDER BY jobs.enqueue_seq;

-- name: jobs_of_tenant_v2
-- A tenant's jobs, enqueue tenant positions numbered on the fly (schema < 3).
SELECT jobs.state, numbered.tpos, jobs.job_id FROM jobs
LEFT JOIN (SELECT job_id, version, row_number() OVER (ORDER BY seq) AS tpos
           FROM events WHERE tenant_id = ?1) AS numbered
       ON numbered.job_id = jobs.job_id AND numbered.version = 1
WHERE jobs.tenant_id = ?1 ORDER BY jobs.enqueue_seq;

-- name: chain_heads
-- Each tenant's chain head: position and hash of its latest event.
SELECT tenant_id, seq, hash FROM chain_heads ORDER BY tenant_id;

-- name: folded_chain_heads
-- Each tenant's chain head (schema version 10 on): its last event after the folded
-- heads' position, else its folded head.
SELECT tenant_id, seq, hash FROM chain_heads
WHERE tenant_id NOT IN (SELECT tenant_id FROM events
                        WHERE seq > (SELECT seq FROM chain_heads_position))
UNION ALL
SELECT tenant_id, seq, hash FROM events
WHERE seq IN (SELECT max(seq) FROM events
              WHERE seq > (SELECT seq FROM chain_heads_position) GROUP BY tenant_id)
ORDER BY tenant_id;

-- name: chain_anchors
-- The chain anchors archival left behind, in log order.
SELECT seq, tenant_id, hash FROM chain_anchors ORDER BY seq;

-- name: archived_ranges
-- The position ranges moved out to archives.
SELECT first_seq, last_seq FROM archived_ranges ORDER BY first_seq;

-- name: archive_cuts
-- Every archival cut, oldest first.
SELECT id, archived_at, cut_before, archive, jobs, events, head_hash, archive_events,
       archive_digest
FROM archive_cuts ORDER BY id;

-- name: integrity_check
-- SQLite's own check of the file.
PRAGMA integrity_check;

-- name: status_counts
-- The stored job counts per tenant and status.
SELECT tenant_id, status, jobs FROM job_counts WHERE jobs != 0 ORDER BY tenant_id, status;

-- name: dependencies
-- Every dependency edge, by tenant and child.
SELECT tenant_id, parent_id, child_id FROM job_edges ORDER BY tenant_id, child_seq, parent_id;

-- name: dependencies_by_child
-- Every dependency edge with its child's position (to merge with the tail's).
SELECT tenant_id, parent_id, child_seq, child_id FROM job_edges;

-- name: job_enqueue_tpos
-- The tenant position of a job's enqueued event.
SELECT tpos FROM events WHERE tenant_id = ?1 AND job_id = ?2 AND version = 1;
