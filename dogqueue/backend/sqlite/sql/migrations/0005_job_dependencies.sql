-- Workflows: one row per dependency, from a parent to each job whose `after` names it.
-- Derived from the enqueued events like the jobs table (a rebuild re-derives it); jobs
-- stored before this version have no parents, so the table starts empty.
CREATE TABLE job_edges (
    tenant_id TEXT    NOT NULL,
    parent_id TEXT    NOT NULL,
    child_seq INTEGER NOT NULL,
    child_id  TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, parent_id, child_seq)
) WITHOUT ROWID;
CREATE INDEX job_edges_by_child ON job_edges (tenant_id, child_id);
