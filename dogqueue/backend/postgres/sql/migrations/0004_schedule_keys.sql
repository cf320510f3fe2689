-- Schedules (dogqueue.Schedule): the newest tick of a schedule is the greatest of its
-- keys, compared byte-wise whatever the database's collation.
CREATE INDEX jobs_by_schedule_key ON jobs (tenant_id, (idempotency_key COLLATE "C"))
    WHERE idempotency_key LIKE 'dogqueue.cron:%';
