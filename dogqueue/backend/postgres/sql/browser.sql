-- The dashboard's reads on a PostgreSQL queue, by name (search_path names its schema).

-- name: page
-- One chunk of jobs, newest first, below the cursor; the Python filter does the rest.
SELECT state FROM jobs
WHERE ($1::text IS NULL OR tenant_id = $1)
  AND ($2::text[] IS NULL OR status = ANY($2))
  AND ($3::text IS NULL OR job_type = $3)
  AND ($4::text IS NULL OR queue = $4)
  AND enqueue_seq < $5
ORDER BY enqueue_seq DESC
LIMIT $6;

-- name: overview
-- Each tenant's jobs by status, and how many are ready (core.order.is_ready).
SELECT tenant_id, status, count(*),
       count(*) FILTER (WHERE status = 'enqueued' AND run_at <= $1)
FROM jobs GROUP BY tenant_id, status ORDER BY tenant_id;

-- name: ready_by_run_at
-- The tenant's ready jobs in (run_at, enqueue_seq) order, read through a cursor as far
-- as the walk that finds the earliest core.order.ready_since goes (one sort).
SELECT state FROM jobs
WHERE tenant_id = $1 AND status = 'enqueued' AND run_at <= $2
ORDER BY run_at, enqueue_seq;

-- name: ahead
-- Ready jobs of the job's tenant and queue that dequeue order (core.order.dequeue_key)
-- puts before it; the job's own row gives its key, in the table's positions.
SELECT count(*) FROM jobs j, (SELECT priority, run_at, enqueue_seq FROM jobs
                              WHERE tenant_id = $1 AND job_id = $2) me
WHERE j.tenant_id = $1 AND j.queue = $3 AND j.status = 'enqueued' AND j.run_at <= $4
  AND j.job_id <> $2
  AND (j.priority > me.priority
       OR (j.priority = me.priority
           AND (j.run_at, j.enqueue_seq) < (me.run_at, me.enqueue_seq)));

-- name: dependents
-- The jobs whose `after` names the job, oldest first (a range of job_edges' key).
SELECT j.state FROM job_edges e
JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.child_id
WHERE e.tenant_id = $1 AND e.parent_id = $2
ORDER BY e.child_seq
LIMIT $3;

-- name: search_ids
-- The newest jobs whose id starts with the prefix ($2, a LIKE pattern): a range of
-- jobs_by_key, or the newest jobs read backwards when the prefix is common.
SELECT enqueue_seq, state FROM jobs
WHERE job_id LIKE $2 AND ($1::text IS NULL OR tenant_id = $1) AND enqueue_seq < $3
ORDER BY enqueue_seq DESC
LIMIT $4;

-- name: search_keys
-- Jobs whose idempotency key starts with the prefix: a range of jobs_by_key_pattern.
SELECT enqueue_seq, state FROM jobs
WHERE idempotency_key LIKE $2 AND ($1::text IS NULL OR tenant_id = $1) AND enqueue_seq < $3
ORDER BY enqueue_seq DESC
LIMIT $4;
