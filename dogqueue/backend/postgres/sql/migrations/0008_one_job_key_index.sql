-- One index for a job's key and the dashboard's id prefix search. The job row is
-- updated twice per job, never HOT (its status is indexed), so every index of `jobs` gets
-- three entries per job: (job_id text_pattern_ops, tenant_id) keeps (tenant_id, job_id)
-- unique, serves loads by key (text_pattern_ops has the same `=`) and a prefix (LIKE
-- 'p%': one byte-wise range, whatever the database's collation), in place of two.
CREATE UNIQUE INDEX jobs_by_key ON jobs (job_id text_pattern_ops, tenant_id);
ALTER TABLE jobs DROP CONSTRAINT jobs_tenant_id_job_id_key;
DROP INDEX jobs_by_id_pattern;
