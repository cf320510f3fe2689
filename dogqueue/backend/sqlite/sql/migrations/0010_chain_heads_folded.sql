-- Chain heads are no longer written at every commit: each tenant's head is the last of
-- its events, and `chain_heads` holds the heads as of the position stamped in
-- `chain_heads_position`, folded from the log every so many events and at close (the
-- heads after it are the tenants' last events after it). Until now the heads were
-- written with each commit, so they are exact as of the end of the log.
CREATE TABLE chain_heads_position (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO chain_heads_position (id, seq)
SELECT 1, coalesce((SELECT max(seq) FROM events), 0);
