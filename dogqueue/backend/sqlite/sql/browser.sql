-- The dashboard's reads on a SQLite log, by name. Loaded once by browser.py.

-- name: tenants
-- Every tenant with jobs, one index seek each (a loose scan of jobs_by_id).
WITH RECURSIVE tenants (tenant_id) AS (
    SELECT min(tenant_id) FROM jobs
    UNION ALL
    SELECT (SELECT min(tenant_id) FROM jobs WHERE tenant_id > tenants.tenant_id)
    FROM tenants WHERE tenants.tenant_id IS NOT NULL
)
SELECT tenant_id FROM tenants WHERE tenant_id IS NOT NULL;

-- name: page
-- A page of one tenant's jobs before a cursor, newest first, read in order from {index}
-- (whose entries end in enqueue_seq, or which holds few rows). {status} is empty or
-- a status condition; browser.py makes one query per (index, status) it needs.
SELECT enqueue_seq, state FROM jobs INDEXED BY {index}
WHERE tenant_id = :tenant AND enqueue_seq < :before {status}
  AND (:job_type IS NULL OR job_type = :job_type)
  AND (:queue IS NULL OR queue = :queue)
  AND (:low IS NULL OR job_id >= :low)
  AND (:high IS NULL OR job_id < :high)
ORDER BY enqueue_seq DESC
LIMIT :limit;

-- name: search_ids
-- Jobs whose id starts with :prefix (a range of jobs_by_id).
SELECT enqueue_seq, state FROM jobs
WHERE tenant_id = :tenant AND job_id >= :prefix AND job_id < :prefix_end
  AND enqueue_seq < :before
ORDER BY job_id DESC
LIMIT :limit;

-- name: search_keys
-- Jobs whose idempotency key starts with :prefix (a range of jobs_by_idempotency_key).
SELECT enqueue_seq, state FROM jobs
WHERE tenant_id = :tenant AND idempotency_key IS NOT NULL
  AND idempotency_key >= :prefix AND idempotency_key < :prefix_end
  AND enqueue_seq < :before
ORDER BY idempotency_key DESC
LIMIT :limit;

-- name: counts
-- The tenant's jobs by status (the job_counts table, moved by each transaction).
SELECT status, jobs FROM job_counts WHERE tenant_id = ?1 AND jobs > 0;

-- name: ready
-- How many of the tenant's jobs are ready (core.order.is_ready).
SELECT count(*) FROM jobs
WHERE tenant_id = ?1 AND status = 'enqueued' AND run_at <= ?2;

-- name: ready_by_run_at
-- The tenant's ready jobs in run_at order, for the walk that finds the earliest
-- core.order.ready_since: keys only (jobs_ready covers them), read as far as it goes.
SELECT enqueue_seq FROM jobs INDEXED BY jobs_ready
WHERE tenant_id = ?1 AND status = 'enqueued' AND run_at <= ?2
ORDER BY run_at, enqueue_seq;

-- name: state_at
-- One job's state, by its row.
SELECT state FROM jobs WHERE enqueue_seq = ?1;

-- name: jobs_ahead
-- Ready jobs of the same tenant and queue that dequeue order (core.order.dequeue_key:
-- priority, run_at, enqueue position) puts before the job; the job's own row gives its
-- key, so the positions compared are of one kind.
SELECT count(*) FROM jobs j, (SELECT priority, run_at, enqueue_seq FROM jobs
                              WHERE tenant_id = :tenant AND job_id = :job_id) me
WHERE j.tenant_id = :tenant AND j.queue = :queue AND j.status = 'enqueued'
  AND j.run_at <= :now AND j.job_id != :job_id
  AND (j.priority > me.priority
       OR (j.priority = me.priority AND (j.run_at, j.enqueue_seq) < (me.run_at, me.enqueue_seq)));

-- name: dependents
-- The jobs whose `after` names :parent, oldest first (a range of job_edges' key).
SELECT j.state FROM job_edges e
JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.child_id
WHERE e.tenant_id = :tenant AND e.parent_id = :parent
ORDER BY e.child_seq
LIMIT :limit;
