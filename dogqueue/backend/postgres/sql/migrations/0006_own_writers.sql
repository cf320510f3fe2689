-- Numbering waits only for this queue's own writers. `pending`: the transactions that
-- held a write lock on `events` when a sequencer step last ran (its cursor may have
-- passed them; the next step looks up their events by xid). `late_writers`: an app
-- transaction that had an xid before its first write here registers it, so its events
-- are found by xid once it commits, wherever the cursor is.
ALTER TABLE log_head ADD COLUMN pending xid8[] NOT NULL DEFAULT '{}';
CREATE TABLE late_writers (
    xid xid8 PRIMARY KEY
);
