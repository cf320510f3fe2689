-- A lighter projection: `jobs_schedule` served only `next_run_at` across tenants, which
-- now reads the tenants of `jobs_ready` and seeks each one's earliest run_at, so every
-- enqueue and every status change writes one index entry fewer.
DROP INDEX IF EXISTS jobs_schedule;
