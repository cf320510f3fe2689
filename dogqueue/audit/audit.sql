-- Every statement the audit tools run on a SQLite log, by name. Loaded by logfile.py.

-- name: records
-- Cast: a tampered row may hold text where bytes belong; the verifier must still read it.
SELECT seq, tenant_id, job_id, version, type, CAST(data AS BLOB), CAST(hash AS BLOB)
FROM events ORDER BY seq;

-- name: event_count
SELECT count(*), coalesce(max(seq), 0) FROM events;

-- name: history
SELECT seq, data FROM events WHERE tenant_id = ?1 AND job_id = ?2 ORDER BY version;

-- name: tenant_events
SELECT seq, data FROM events WHERE tenant_id = ?1 ORDER BY seq;

-- name: all_events
SELECT seq, data FROM events ORDER BY seq;

-- name: jobs_of_tenant
SELECT state FROM jobs WHERE tenant_id = ?1 ORDER BY enqueue_seq;

-- name: all_jobs
SELECT state FROM jobs ORDER BY enqueue_seq;

-- name: terminal_jobs
SELECT state FROM jobs WHERE status IN ('completed', 'failed', 'canceled') ORDER BY enqueue_seq;

-- name: ready_in_queue
SELECT state FROM jobs
WHERE tenant_id = ?1 AND queue = ?2 AND status = 'enqueued' AND run_at <= ?3;

-- name: chain_heads
SELECT tenant_id, seq, hash FROM chain_heads ORDER BY tenant_id;

-- name: chain_anchors
SELECT seq, tenant_id, hash FROM chain_anchors ORDER BY seq;

-- name: archived_ranges
SELECT first_seq, last_seq FROM archived_ranges ORDER BY first_seq;

-- name: archive_cuts
SELECT id, archived_at, cut_before, archive, jobs, events, head_hash, archive_events,
       archive_digest
FROM archive_cuts ORDER BY id;

-- name: integrity_check
PRAGMA integrity_check;

-- name: job_events_rows
SELECT seq, tenant_id, job_id, version, type, data, hash FROM events
WHERE tenant_id = ?1 AND job_id = ?2 ORDER BY seq;

-- name: insert_event_row
INSERT OR IGNORE INTO events (seq, tenant_id, job_id, version, type, data, hash)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7);

-- name: delete_job_events
DELETE FROM events WHERE tenant_id = ?1 AND job_id = ?2;

-- name: delete_job
DELETE FROM jobs WHERE tenant_id = ?1 AND job_id = ?2;

-- name: delete_anchors
DELETE FROM chain_anchors;

-- name: insert_anchor
INSERT OR REPLACE INTO chain_anchors (seq, tenant_id, hash) VALUES (?1, ?2, ?3);

-- name: insert_archived_range
INSERT INTO archived_ranges (first_seq, last_seq) VALUES (?1, ?2);

-- name: insert_archive_cut
INSERT INTO archive_cuts (archived_at, cut_before, archive, jobs, events, head_hash,
                          archive_events, archive_digest)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8);

-- name: seq_hashes
SELECT seq, hash FROM events ORDER BY seq;
