-- The dashboard's job lists: one tenant's jobs of some statuses, newest first.
CREATE INDEX jobs_by_status ON jobs (tenant_id, status, enqueue_seq);
