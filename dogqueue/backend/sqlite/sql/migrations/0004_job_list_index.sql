-- The dashboard's job list and dead letters: a tenant's jobs of one status, newest first
-- (the rowid, enqueue_seq, ends every index entry, so the order needs no sort).
CREATE INDEX jobs_by_status ON jobs (tenant_id, status);
