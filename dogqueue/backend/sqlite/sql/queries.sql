-- Every statement the SQLite backend runs, by name. Loaded once by queries.py.

-- name: schema_version_table
-- Create the one-row table that records the schema version.
CREATE TABLE IF NOT EXISTS schema_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);

-- name: schema_version
-- The schema version the database is at.
SELECT version FROM schema_version WHERE id = 1;

-- name: set_schema_version
-- Record the schema version ?1.
INSERT INTO schema_version (id, version) VALUES (1, ?1)
ON CONFLICT (id) DO UPDATE SET version = excluded.version;

-- name: next_seq
-- Positions moved out by archival are never reused.
SELECT max(coalesce((SELECT max(seq) FROM events), 0),
           coalesce((SELECT last_seq FROM archived_ranges ORDER BY first_seq DESC LIMIT 1), 0))
       + 1;

-- name: insert_event
-- Append one event with its chain hash, tenant position and (enqueued events) key.
INSERT INTO events (seq, tenant_id, job_id, version, type, data, hash, tpos, idempotency_key)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: job_events
-- One job's events at their log positions, in version order (its state is their fold).
SELECT seq, data FROM events WHERE tenant_id = ?1 AND job_id = ?2 ORDER BY version;

-- name: job_enqueue_tpos
-- The tenant position of a job's enqueued event.
SELECT tpos FROM events WHERE tenant_id = ?1 AND job_id = ?2 AND version = 1;

-- name: job_for_key_in_log
-- The job whose enqueued event holds an idempotency key of a tenant.
SELECT job_id FROM events WHERE tenant_id = ?1 AND idempotency_key = ?2;

-- name: latest_key_in_log
-- The greatest key in [?2, ?3) held by a tenant's enqueued event, and its job.
SELECT idempotency_key, job_id FROM events
WHERE tenant_id = ?1 AND idempotency_key >= ?2 AND idempotency_key < ?3
ORDER BY idempotency_key DESC LIMIT 1;

-- name: checkpoint_position
-- The log position the projection tables cover.
SELECT seq FROM projection_checkpoint WHERE id = 1;

-- name: set_checkpoint_position
-- Stamp the projection tables with the position they now cover.
INSERT INTO projection_checkpoint (id, seq) VALUES (1, ?1)
ON CONFLICT (id) DO UPDATE SET seq = excluded.seq;

-- name: overwrite_job
-- Write a checkpointed job's state as of the checkpoint's new position.
UPDATE jobs SET status = ?1, run_at = ?2, lease_expires_at = ?3, version = ?4, state = ?5
WHERE enqueue_seq = ?6;

-- name: checkpointed_status
-- A job's status and version in the checkpoint (no row: not there).
SELECT status, version FROM jobs WHERE enqueue_seq = ?1;

-- name: live_jobs
-- The checkpoint's jobs that may still change (the others left memory), one status
-- index each.
SELECT state FROM jobs INDEXED BY jobs_ready WHERE status = 'enqueued'
UNION ALL
SELECT state FROM jobs INDEXED BY jobs_leases WHERE status = 'leased'
UNION ALL
SELECT state FROM jobs INDEXED BY jobs_by_rare_status WHERE status = 'waiting';

-- name: all_edges
-- Every dependency edge of the checkpoint: (tenant, parent, child), oldest child first.
SELECT tenant_id, parent_id, child_id FROM job_edges ORDER BY child_seq;

-- name: load_job
-- One job's state.
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
-- The job holding an idempotency key of a tenant.
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
-- Tenant ?1's leases expired at ?2, oldest expiry first.
SELECT state FROM jobs
WHERE tenant_id = ?1 AND status = 'leased' AND lease_expires_at <= ?2
ORDER BY lease_expires_at, enqueue_seq;

-- name: expired_leases
-- Every lease expired at ?1, oldest expiry first.
SELECT state FROM jobs
WHERE status = 'leased' AND lease_expires_at <= ?1
ORDER BY lease_expires_at, enqueue_seq;

-- name: insert_job
-- Insert one job row.
INSERT INTO jobs (enqueue_seq, tenant_id, job_id, status, queue, priority, job_type, run_at,
                  lease_expires_at, idempotency_key, version, state)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: insert_edge
-- Insert one dependency edge.
INSERT INTO job_edges (tenant_id, parent_id, child_seq, child_id) VALUES (?1, ?2, ?3, ?4);

-- name: dependents
-- A job's dependents, oldest first.
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
-- Delete every dependency edge (a projection rebuild).
DELETE FROM job_edges;

-- name: delete_edges_of_child
-- Delete a job's edges to its parents (archival).
DELETE FROM job_edges WHERE tenant_id = ?1 AND child_id = ?2;

-- name: add_to_job_count
-- A transaction's net change to the number of a tenant's jobs in one status.
INSERT INTO job_counts (tenant_id, status, jobs) VALUES (?1, ?2, ?3)
ON CONFLICT (tenant_id, status) DO UPDATE SET jobs = jobs + excluded.jobs;

-- name: delete_job_counts
-- Delete the stored job counts (before counting again).
DELETE FROM job_counts;

-- name: count_jobs
-- Counts from the rows themselves, after a rebuild or an archival rewrote them.
INSERT INTO job_counts (tenant_id, status, jobs)
SELECT tenant_id, status, count(*) FROM jobs GROUP BY tenant_id, status;

-- name: update_job
-- Move one job row, guarded by its version.
UPDATE jobs SET status = ?1, run_at = ?2, lease_expires_at = ?3, version = ?4, state = ?5
WHERE enqueue_seq = ?6 AND version = ?7;

-- name: history
-- One job's events with their tenant positions, in version order.
SELECT tpos, data FROM events WHERE tenant_id = ?1 AND job_id = ?2 ORDER BY version;

-- name: read_events
-- Events after position ?1, in log order.
SELECT seq, data FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2;

-- name: all_jobs
-- Every job's state, in enqueue order.
SELECT state FROM jobs ORDER BY enqueue_seq;

-- name: delete_jobs
-- Delete every job row (a projection rebuild).
DELETE FROM jobs;

-- name: tenants_with_enqueued_jobs
-- Every tenant with an enqueued job, walked along the ready index.
WITH RECURSIVE tenants (tenant_id) AS (
    SELECT min(tenant_id) FROM jobs INDEXED BY jobs_ready WHERE status = 'enqueued'
    UNION ALL
    SELECT (SELECT min(tenant_id) FROM jobs INDEXED BY jobs_ready
            WHERE status = 'enqueued' AND tenant_id > tenants.tenant_id)
    FROM tenants WHERE tenants.tenant_id IS NOT NULL
)
SELECT tenant_id FROM tenants WHERE tenant_id IS NOT NULL;

-- name: tenant_is_ready
-- Whether tenant ?1 has a job ready in one of the queues ?2.
SELECT EXISTS (
    SELECT 1 FROM json_each(?2) AS q, json_each('[0,1,2]') AS p
    WHERE EXISTS (SELECT 1 FROM jobs
                  WHERE tenant_id = ?1 AND queue = q.value AND priority = p.value
                    AND status = 'enqueued' AND run_at <= ?3)
);

-- name: next_run_at_of_tenants
-- The earliest run time of an enqueued job of some tenants in some queues.
SELECT min((SELECT min(run_at) FROM jobs
            WHERE tenant_id = t.value AND queue = q.value AND priority = p.value
              AND status = 'enqueued'))
FROM json_each(?1) AS t, json_each(?2) AS q, json_each('[0,1,2]') AS p;

-- name: data_version
-- Changes when another connection commits (the writer's memo check).
PRAGMA data_version;

-- name: chain_head
-- A tenant's chain head: hash and tenant position of its latest event (its last event
-- after the folded heads' position, read backwards from the end of the log, else its
-- folded head).
SELECT hash, tpos FROM (
    SELECT hash, tpos, 1 AS later FROM (
        SELECT hash, tpos FROM events NOT INDEXED
        WHERE seq > (SELECT seq FROM chain_heads_position) AND tenant_id = ?1
        ORDER BY seq DESC LIMIT 1)
    UNION ALL
    SELECT hash, tpos, 0 AS later FROM chain_heads WHERE tenant_id = ?1)
ORDER BY later DESC LIMIT 1;

-- name: events_heads_after
-- The chain links of the events after a position, in log order (what other
-- connections appended since this one last committed).
SELECT tenant_id, seq, hash, tpos FROM events WHERE seq > ?1 ORDER BY seq;

-- name: set_chain_head
-- Write a tenant's chain head.
INSERT INTO chain_heads (tenant_id, seq, hash, tpos) VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (tenant_id) DO UPDATE
SET seq = excluded.seq, hash = excluded.hash, tpos = excluded.tpos;

-- name: fold_chain_heads
-- Fold into `chain_heads` each tenant's last event after the folded position.
-- NOT INDEXED: else SQLite groups by scanning all of `events_by_job` (the whole log,
-- every fold) instead of the rowid range after the position.
INSERT INTO chain_heads (tenant_id, seq, hash, tpos)
SELECT tenant_id, seq, hash, tpos FROM events
WHERE seq IN (SELECT max(seq) FROM events NOT INDEXED
              WHERE seq > (SELECT seq FROM chain_heads_position) GROUP BY tenant_id)
ON CONFLICT (tenant_id) DO UPDATE
SET seq = excluded.seq, hash = excluded.hash, tpos = excluded.tpos;

-- name: set_chain_heads_position
-- The folded heads now cover the log up to its last event.
UPDATE chain_heads_position SET seq = (SELECT max(seq) FROM events)
WHERE seq < (SELECT max(seq) FROM events);

-- name: unfolded_events
-- How far the log's last event is past the folded heads' position.
SELECT coalesce((SELECT max(seq) FROM events), 0) - (SELECT seq FROM chain_heads_position);

-- name: unhashed_events
-- Events written before the chain existed, after position ?1.
SELECT seq, tenant_id, data FROM events WHERE hash IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2;

-- name: set_event_hash
-- Give an old event its chain hash.
UPDATE events SET hash = ?1 WHERE seq = ?2;

-- Archival (dogqueue/backend/sqlite/archive.py) ------------------------------------------

-- name: archive_records
-- Every record of an archive file, in log order.
SELECT seq, tenant_id, job_id, version, type, data, hash, tpos FROM events ORDER BY seq;

-- name: archive_anchors
-- Every chain anchor of an archive file, in log order.
SELECT seq, tenant_id, hash FROM chain_anchors ORDER BY seq;

-- name: insert_event_row
-- Copy one record into an archive (kept if already there).
INSERT OR IGNORE INTO events (seq, tenant_id, job_id, version, type, data, hash, tpos)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8);

-- name: delete_job_events
-- Delete a job's events (archival moves them out).
DELETE FROM events WHERE tenant_id = ?1 AND job_id = ?2;

-- name: delete_job
-- Delete a job row (archival moves it out).
DELETE FROM jobs WHERE tenant_id = ?1 AND job_id = ?2;

-- name: delete_anchors
-- Delete every chain anchor (before writing them again).
DELETE FROM chain_anchors;

-- name: insert_anchor
-- Record the chain hash an archived range ended on, per tenant.
INSERT OR REPLACE INTO chain_anchors (seq, tenant_id, hash) VALUES (?1, ?2, ?3);

-- name: insert_archived_range
-- Record a position range moved out to an archive.
INSERT INTO archived_ranges (first_seq, last_seq) VALUES (?1, ?2);

-- name: insert_archive_cut
-- Record one archival cut.
INSERT INTO archive_cuts (archived_at, cut_before, archive, jobs, events, head_hash,
                          archive_events, archive_digest)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8);

-- name: seq_hashes
-- Every position and hash, in log order (an archive's fingerprint).
SELECT seq, hash FROM events ORDER BY seq;

-- name: announce_worker
-- Store a worker's presence record, replacing its previous one.
INSERT INTO workers (worker_id, last_seen, data) VALUES (?, ?, ?)
ON CONFLICT (worker_id) DO UPDATE SET last_seen = excluded.last_seen, data = excluded.data;

-- name: forget_workers
-- Forget presence records not refreshed since a time.
DELETE FROM workers WHERE last_seen < ?;

-- name: workers_seen_since
-- Presence records refreshed at or after a time.
SELECT data FROM workers WHERE last_seen >= ?;

-- The checkpoint read lazily by the writer's projection (projection.py) -------------------

-- name: cold_ready_page
-- The next ?6 enqueued jobs of one (tenant, queue, priority) in the checkpoint, in
-- dequeue order after (run_at, enqueue_seq) = (?4, ?5): keys, id and version only. Two
-- index ranges (the rest of run_at ?4, then later ones): a row value comparison would
-- seek to run_at ?4 and step over every job of it up to ?5.
SELECT * FROM (SELECT run_at, enqueue_seq, job_id, version FROM jobs INDEXED BY jobs_ready
               WHERE tenant_id = ?1 AND queue = ?2 AND priority = ?3 AND status = 'enqueued'
                 AND run_at = ?4 AND enqueue_seq > ?5
               ORDER BY enqueue_seq LIMIT ?6)
UNION ALL
SELECT * FROM (SELECT run_at, enqueue_seq, job_id, version FROM jobs INDEXED BY jobs_ready
               WHERE tenant_id = ?1 AND queue = ?2 AND priority = ?3 AND status = 'enqueued'
                 AND run_at > ?4
               ORDER BY run_at, enqueue_seq LIMIT ?6)
LIMIT ?6;

-- name: cold_lease_page
-- The next ?4 leased jobs of one tenant in the checkpoint, in expiry order after
-- (lease_expires_at, enqueue_seq) = (?2, ?3): keys, id and version only (two index
-- ranges, as in cold_ready_page).
SELECT * FROM (SELECT lease_expires_at, enqueue_seq, job_id, version
               FROM jobs INDEXED BY jobs_leases
               WHERE tenant_id = ?1 AND status = 'leased'
                 AND lease_expires_at = ?2 AND enqueue_seq > ?3
               ORDER BY enqueue_seq LIMIT ?4)
UNION ALL
SELECT * FROM (SELECT lease_expires_at, enqueue_seq, job_id, version
               FROM jobs INDEXED BY jobs_leases
               WHERE tenant_id = ?1 AND status = 'leased' AND lease_expires_at > ?2
               ORDER BY lease_expires_at, enqueue_seq LIMIT ?4)
LIMIT ?4;

-- name: first_ready_queue
-- The first (tenant, queue) with an enqueued job in the checkpoint (one index step).
SELECT tenant_id, queue FROM jobs INDEXED BY jobs_ready WHERE status = 'enqueued'
ORDER BY tenant_id, queue LIMIT 1;

-- name: next_ready_queue
-- The (tenant, queue) after (?1, ?2) with an enqueued job in the checkpoint.
SELECT tenant_id, queue FROM jobs INDEXED BY jobs_ready
WHERE status = 'enqueued' AND (tenant_id, queue) > (?1, ?2)
ORDER BY tenant_id, queue LIMIT 1;

-- name: first_lease_tenant
-- The first tenant with a leased job in the checkpoint (one index step).
SELECT tenant_id FROM jobs INDEXED BY jobs_leases WHERE status = 'leased'
ORDER BY tenant_id LIMIT 1;

-- name: next_lease_tenant
-- The tenant after ?1 with a leased job in the checkpoint.
SELECT tenant_id FROM jobs INDEXED BY jobs_leases WHERE status = 'leased' AND tenant_id > ?1
ORDER BY tenant_id LIMIT 1;

-- name: job_rows_after
-- The positions of the job rows enqueued after position ?1 (a rowid range).
SELECT enqueue_seq FROM jobs WHERE enqueue_seq > ?1;

-- name: checkpointed_job
-- A checkpointed job's state, by its enqueue position.
SELECT state FROM jobs WHERE enqueue_seq = ?1;

-- name: has_edges
-- Whether the checkpoint holds any dependency edge.
SELECT EXISTS (SELECT 1 FROM job_edges);
