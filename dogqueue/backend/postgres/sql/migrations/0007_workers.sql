-- Workers' presence records: one row per worker run, replaced at each announcement
-- (every 10 s) and forgotten a day after it was last refreshed. Not events: presence is
-- not job history, and appending it would grow every tenant's chain for ever.
CREATE TABLE workers (
    worker_id TEXT   PRIMARY KEY,
    last_seen BIGINT NOT NULL,
    data      BYTEA  NOT NULL
);
