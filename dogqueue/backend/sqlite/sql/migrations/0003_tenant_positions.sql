-- Tenant positions: each event's position among its tenant's events, dense from 1, so
-- what a tenant is shown (history, --as-of, the command line) reveals nothing about how
-- many events other tenants appended in between. `seq` stays the log position.
ALTER TABLE events ADD COLUMN tpos INTEGER;
UPDATE events SET tpos = numbered.tpos
FROM (SELECT seq, row_number() OVER (PARTITION BY tenant_id ORDER BY seq) AS tpos
      FROM events) AS numbered
WHERE numbered.seq = events.seq;
-- No index on (tenant_id, tpos): only the audit tools search by it, and every append
-- would pay for one more B-tree. `dogqueue verify` checks that the positions are dense.

-- Each tenant's head also keeps the head event's tenant position: the next one is +1.
ALTER TABLE chain_heads ADD COLUMN tpos INTEGER NOT NULL DEFAULT 0;
UPDATE chain_heads
SET tpos = coalesce((SELECT max(tpos) FROM events WHERE events.tenant_id = chain_heads.tenant_id), 0);
