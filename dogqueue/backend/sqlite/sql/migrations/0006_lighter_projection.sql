-- A lighter projection: `jobs_schedule` served only `next_run_at` across tenants, which
-- now walks the tenants of `jobs_ready` instead (a few index seeks per tenant), so every
-- enqueue and every status change writes one index entry fewer.
DROP INDEX IF EXISTS jobs_schedule;
