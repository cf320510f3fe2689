-- Log first: events are the only per-event write. The projection lives in each writing
-- process's memory, caught up from the log under the write lock; the tables `jobs`,
-- `job_edges` and `job_counts` become a checkpoint of it, written in the background and
-- stamped with the log position they cover (`projection_checkpoint`).

-- Idempotency by unique constraint moves to the log: each enqueued event carries its
-- job's key, and no two of a tenant's events may hold the same one. Keys of jobs still
-- in the log come from their rows (archival released the others with their events).
ALTER TABLE events ADD COLUMN idempotency_key TEXT;
UPDATE events SET idempotency_key = (
    SELECT jobs.idempotency_key FROM jobs
    WHERE jobs.tenant_id = events.tenant_id AND jobs.job_id = events.job_id
) WHERE version = 1;
CREATE UNIQUE INDEX events_by_idempotency_key ON events (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The position the checkpoint tables cover: every event up to it is folded into them,
-- none after. Until now they were written with each event, so they cover the whole log.
CREATE TABLE projection_checkpoint (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO projection_checkpoint (id, seq)
SELECT 1, max(coalesce((SELECT max(seq) FROM events), 0),
              coalesce((SELECT max(last_seq) FROM archived_ranges), 0));
