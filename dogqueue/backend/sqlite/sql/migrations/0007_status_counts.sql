-- Status counts as a derived table instead of an index on status. `jobs_by_status`
-- moved an index entry at every status change of every job (a fifth of the writer's
-- time in the lifecycle benchmark); the dashboard used it to count jobs by status and to
-- list the jobs of one status. Counts now live in `job_counts`, one row per (tenant,
-- status), moved once per transaction by its net change; the statuses few jobs are in
-- keep an index for their lists, and the others are listed by walking the tenant's rows
-- from the newest back (`jobs_by_tenant`: written once per job, never moved).
DROP INDEX IF EXISTS jobs_by_status;

CREATE TABLE job_counts (
    tenant_id TEXT    NOT NULL,
    status    TEXT    NOT NULL,
    jobs      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, status)
) WITHOUT ROWID;

INSERT INTO job_counts (tenant_id, status, jobs)
SELECT tenant_id, status, count(*) FROM jobs GROUP BY tenant_id, status;

-- Written only when a job enters one of these statuses (never on the path of a job that
-- is enqueued, leased and completed).
CREATE INDEX jobs_by_rare_status ON jobs (tenant_id, status)
    WHERE status = 'failed' OR status = 'canceled' OR status = 'waiting';

-- A tenant's jobs in enqueue order (the rowid ends every entry).
CREATE INDEX jobs_by_tenant ON jobs (tenant_id);
