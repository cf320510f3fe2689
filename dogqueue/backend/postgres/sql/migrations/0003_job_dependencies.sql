-- Workflows: one row per dependency, from a parent to each job whose `after` names it,
-- and on each job the number of its dependents. Both are derived from the enqueued
-- events (a rebuild re-derives them); jobs stored before this version have no parents.
-- A batch that ends a job reads its dependents only when `dependents` is not 0, and
-- guards its update on `dependents`, so a dependent added meanwhile makes it re-run.
ALTER TABLE jobs ADD COLUMN dependents integer NOT NULL DEFAULT 0;
CREATE TABLE job_edges (
    tenant_id text   NOT NULL,
    parent_id text   NOT NULL,
    child_seq bigint NOT NULL,
    child_id  text   NOT NULL,
    PRIMARY KEY (tenant_id, parent_id, child_seq)
);
CREATE INDEX job_edges_by_child ON job_edges (tenant_id, child_id);
