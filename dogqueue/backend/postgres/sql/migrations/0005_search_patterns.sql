-- The dashboard's search for a prefix of a job id or an idempotency key (LIKE 'p%'):
-- text_pattern_ops compares byte-wise, so a prefix is one index range whatever the
-- database's collation. Written once per job: ids and keys never change.
CREATE INDEX jobs_by_id_pattern ON jobs (job_id text_pattern_ops);
CREATE INDEX jobs_by_key_pattern ON jobs (idempotency_key text_pattern_ops)
    WHERE idempotency_key IS NOT NULL;
