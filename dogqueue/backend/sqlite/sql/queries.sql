-- Every statement the SQLite backend runs, by name. Loaded once by queries.py.

-- name: schema_version_table
CREATE TABLE IF NOT EXISTS schema_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);

-- name: schema_version
SELECT version FROM schema_version WHERE id = 1;

-- name: set_schema_version
INSERT INTO schema_version (id, version) VALUES (1, ?1)
ON CONFLICT (id) DO UPDATE SET version = excluded.version;

-- name: next_seq
-- Positions moved out by archival are never reused.
SELECT max(coalesce((SELECT max(seq) FROM events), 0),
           coalesce((SELECT last_seq FROM archived_ranges ORDER BY first_seq DESC LIMIT 1), 0))
       + 1;

-- name: insert_event
INSERT INTO events (seq, tenant_id, job_id, version, type, data, hash, tpos)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: load_job
SELECT state FROM jobs WHERE tenant_id = ?1 AND job_id = ?2;

-- name: load_jobs
-- Several jobs of one tenant: ?2 is a JSON list of job ids.
SELECT job_id, state FROM jobs
WHERE tenant_id = ?1 AND job_id IN (SELECT value FROM json_each(?2));

-- name: tenant_job
-- A job as its tenant sees it: with the tenant position of its enqueued event.
SELECT jobs.state, events.tpos FROM jobs
LEFT JOIN events ON events.tenant_id = jobs.tenant_id AND events.job_id = jobs.job_id
            AND events.version = 1
WHERE jobs.tenant_id = ?1 AND jobs.job_id = ?2;

-- name: job_for_key
SELECT job_id FROM jobs WHERE tenant_id = ?1 AND idempotency_key = ?2;

-- name: latest_key
-- The greatest key in [?2, ?3): a schedule's newest tick (one step of the key index).
SELECT idempotency_key, job_id FROM jobs
WHERE tenant_id = ?1 AND idempotency_key >= ?2 AND idempotency_key < ?3
ORDER BY idempotency_key DESC LIMIT 1;

-- name: ready_candidates
-- The first ?4 jobs of one tenant's queue in dequeue order (HIGH, NORMAL, LOW priority,
-- then earliest run_at, then FIFO): one index range per priority, no sort.
SELECT priority, run_at, enqueue_seq, state FROM (
    SELECT * FROM (SELECT priority, run_at, enqueue_seq, state FROM jobs
                   WHERE tenant_id = ?1 AND queue = ?2 AND priority = 2
                     AND status = 'enqueued' AND run_at <= ?3
                   ORDER BY run_at, enqueue_seq LIMIT ?4)
    UNION ALL
    SELECT * FROM (SELECT priority, run_at, enqueue_seq, state FROM jobs
                   WHERE tenant_id = ?1 AND queue = ?2 AND priority = 1
                     AND status = 'enqueued' AND run_at <= ?3
                   ORDER BY run_at, enqueue_seq LIMIT ?4)
    UNION ALL
    SELECT * FROM (SELECT priority, run_at, enqueue_seq, state FROM jobs
                   WHERE tenant_id = ?1 AND queue = ?2 AND priority = 0
                     AND status = 'enqueued' AND run_at <= ?3
                   ORDER BY run_at, enqueue_seq LIMIT ?4)
)
LIMIT ?4;

-- name: expired_leases_of_tenant
SELECT state FROM jobs
WHERE tenant_id = ?1 AND status = 'leased' AND lease_expires_at <= ?2
ORDER BY lease_expires_at, enqueue_seq;

-- name: expired_leases
SELECT state FROM jobs
WHERE status = 'leased' AND lease_expires_at <= ?1
ORDER BY lease_expires_at, enqueue_seq;

-- name: insert_job
INSERT INTO jobs (enqueue_seq, tenant_id, job_id, status, queue, priority, job_type, run_at,
                  lease_expires_at, idempotency_key, version, state)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_edge
INSERT INTO job_edges (tenant_id, parent_id, child_seq, child_id) VALUES (?1, ?2, ?3, ?4);

-- name: dependents
SELECT child_id FROM job_edges WHERE tenant_id = ?1 AND parent_id = ?2 ORDER BY child_seq;

-- name: dependents_of_jobs
-- The dependents of several jobs of one tenant (?2, a JSON list of job ids), oldest first.
SELECT parent_id, child_id FROM job_edges
WHERE tenant_id = ?1 AND parent_id IN (SELECT value FROM json_each(?2))
ORDER BY child_seq;

-- name: parents_and_dependents_of_tenant
-- Every dependency of one tenant's jobs: (parent, child), oldest child first.
SELECT parent_id, child_id FROM job_edges WHERE tenant_id = ?1 ORDER BY child_seq;

-- name: delete_edges
DELETE FROM job_edges;

-- name: delete_edges_of_child
DELETE FROM job_edges WHERE tenant_id = ?1 AND child_id = ?2;

-- name: add_to_job_count
-- A transaction's net change to the number of a tenant's jobs in one status.
INSERT INTO job_counts (tenant_id, status, jobs) VALUES (?1, ?2, ?3)
ON CONFLICT (tenant_id, status) DO UPDATE SET jobs = jobs + excluded.jobs;

-- name: delete_job_counts
DELETE FROM job_counts;

-- name: count_jobs
-- Counts from the rows themselves, after a rebuild or an archival rewrote them.
INSERT INTO job_counts (tenant_id, status, jobs)
SELECT tenant_id, status, count(*) FROM jobs GROUP BY tenant_id, status;

-- name: update_job
UPDATE jobs SET status = ?1, run_at = ?2, lease_expires_at = ?3, version = ?4, state = ?5
WHERE enqueue_seq = ?6 AND version = ?7;

-- name: history
SELECT tpos, data FROM events WHERE tenant_id = ?1 AND job_id = ?2 ORDER BY version;

-- name: read_events
SELECT seq, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2;

-- name: all_jobs
SELECT state FROM jobs ORDER BY enqueue_seq;

-- name: delete_jobs
DELETE FROM jobs;

-- name: tenants_with_enqueued_jobs
WITH RECURSIVE tenants (tenant_id) AS (
    SELECT min(tenant_id) FROM jobs INDEXED BY jobs_ready WHERE status = 'enqueued'
    UNION ALL
    SELECT (SELECT min(tenant_id) FROM jobs INDEXED BY jobs_ready
            WHERE status = 'enqueued' AND tenant_id > tenants.tenant_id)
    FROM tenants WHERE tenants.tenant_id IS NOT NULL
)
SELECT tenant_id FROM tenants WHERE tenant_id IS NOT NULL;

-- name: tenant_is_ready
SELECT EXISTS (
    SELECT 1 FROM json_each(?2) AS q, json_each('[0,1,2]') AS p
    WHERE EXISTS (SELECT 1 FROM jobs
                  WHERE tenant_id = ?1 AND queue = q.value AND priority = p.value
                    AND status = 'enqueued' AND run_at <= ?3)
);

-- name: next_run_at_of_tenants
SELECT min((SELECT min(run_at) FROM jobs
            WHERE tenant_id = t.value AND queue = q.value AND priority = p.value
              AND status = 'enqueued'))
FROM json_each(?1) AS t, json_each(?2) AS q, json_each('[0,1,2]') AS p;

-- name: data_version
PRAGMA data_version;

-- name: chain_head
SELECT hash, tpos FROM chain_heads WHERE tenant_id = ?1;

-- name: set_chain_head
INSERT INTO chain_heads (tenant_id, seq, hash, tpos) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (tenant_id) DO UPDATE
SET seq = excluded.seq, hash = excluded.hash, tpos = excluded.tpos;

-- name: unhashed_events
SELECT seq, tenant_id, data FROM events WHERE hash IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2;

-- name: set_event_hash
UPDATE events SET hash = ?1 WHERE seq = ?2;

-- Archival (dogqueue/backend/sqlite/archive.py) ------------------------------------------

-- name: archive_records
SELECT seq, tenant_id, job_id, version, type, data, hash, tpos FROM events ORDER BY seq;

-- name: archive_anchors
SELECT seq, tenant_id, hash FROM chain_anchors ORDER BY seq;

-- name: insert_event_row
INSERT OR IGNORE INTO events (seq, tenant_id, job_id, version, type, data, hash, tpos)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8);

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
