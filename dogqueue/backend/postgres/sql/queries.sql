-- Every statement the PostgreSQL backend runs, by name. Loaded once by queries.py.
-- The connection's search_path names the queue's schema.

-- name: schema_version_table
-- Create the one-row table that records the schema version.
CREATE TABLE IF NOT EXISTS schema_version (
    id      integer PRIMARY KEY CHECK (id = 1),
    version integer NOT NULL
);

-- name: schema_version
-- The schema version the database is at.
SELECT version FROM schema_version WHERE id = 1;

-- name: schema_exists
-- Whether the schema $1 exists.
SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1);

-- name: set_schema_version
-- Record the schema version $1.
INSERT INTO schema_version (id, version) VALUES (1, $1)
ON CONFLICT (id) DO UPDATE SET version = excluded.version;

-- name: read_jobs
-- Loads of a batch that claims nothing: not locked; the flush's version guard decides.
SELECT state, dependents FROM jobs
WHERE (tenant_id, job_id) IN (SELECT * FROM unnest($1::text[], $2::text[]));

-- name: lock_jobs
-- Loads of a batch, locked one by one in the order given (the caller sorts them, so
-- that two batches never deadlock): no sort, so a claiming transaction, which plans
-- with sorts off (claims.py), still reads only these rows.
SELECT j.state, j.dependents
FROM unnest($1::text[], $2::text[]) AS k(tenant_id, job_id)
CROSS JOIN LATERAL (SELECT state, dependents FROM jobs
                    WHERE jobs.tenant_id = k.tenant_id AND jobs.job_id = k.job_id
                    FOR UPDATE) AS j;

-- name: jobs_for_keys
-- The jobs holding some (tenant, idempotency key) pairs.
SELECT tenant_id, idempotency_key, job_id FROM jobs
WHERE (tenant_id, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]));

-- name: latest_keys
-- For each (tenant, prefix, end): the greatest key in [prefix, end) and its job, compared
-- byte-wise (COLLATE "C", whatever the database's collation), on jobs_by_schedule_key.
SELECT wanted.tenant_id, newest.idempotency_key, newest.job_id
FROM unnest($1::text[], $2::text[], $3::text[]) AS wanted(tenant_id, prefix, prefix_end)
CROSS JOIN LATERAL (
    SELECT jobs.idempotency_key, jobs.job_id FROM jobs
    WHERE jobs.tenant_id = wanted.tenant_id
      AND jobs.idempotency_key LIKE 'dogqueue.cron:%'
      AND (jobs.idempotency_key COLLATE "C") >= wanted.prefix
      AND (jobs.idempotency_key COLLATE "C") < wanted.prefix_end
    ORDER BY (jobs.idempotency_key COLLATE "C") DESC
    LIMIT 1
) AS newest;

-- name: claim_ready
-- The first $4 ready jobs of one tenant's queue in dequeue order, skipping jobs another
-- transaction holds.
SELECT state, dependents FROM jobs
WHERE tenant_id = $1 AND queue = $2 AND status = 'enqueued' AND run_at <= $3
ORDER BY priority DESC, run_at, enqueue_seq
LIMIT $4
FOR UPDATE SKIP LOCKED;

-- name: claim_for_lease
-- A batch that only leases from tenant $1's queue $2, in one round trip: its time in
-- microseconds ($5, or the server's if NULL; kind 0), the tenant's expired leases (kind 1,
-- at most $4, oldest expiry first) and the first $3 ready jobs in dequeue order (kind 2),
-- both skipping rows another transaction holds (as claim_expired_of_tenant and
-- claim_ready).
WITH now AS MATERIALIZED (
    SELECT coalesce($5::bigint, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) AS us
), expired AS MATERIALIZED (
    SELECT state, dependents FROM jobs
    WHERE tenant_id = $1 AND status = 'leased' AND lease_expires_at <= (SELECT us FROM now)
    ORDER BY lease_expires_at, enqueue_seq
    LIMIT $4
    FOR UPDATE SKIP LOCKED
), ready AS MATERIALIZED (
    SELECT state, dependents FROM jobs
    WHERE tenant_id = $1 AND queue = $2 AND status = 'enqueued'
      AND run_at <= (SELECT us FROM now)
    ORDER BY priority DESC, run_at, enqueue_seq
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
SELECT 0 AS kind, us, NULL::bytea AS state, NULL::integer AS dependents FROM now
UNION ALL SELECT 1, NULL, state, dependents FROM expired
UNION ALL SELECT 2, NULL, state, dependents FROM ready;

-- name: claim_expired
-- Lock expired leases of every tenant, oldest expiry first, skipping locked rows.
SELECT state, dependents FROM jobs
WHERE status = 'leased' AND lease_expires_at <= $1
ORDER BY lease_expires_at, enqueue_seq
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: claim_expired_of_tenant
-- Lock expired leases of tenant $3, oldest expiry first, skipping locked rows.
SELECT state, dependents FROM jobs
WHERE tenant_id = $3 AND status = 'leased' AND lease_expires_at <= $1
ORDER BY lease_expires_at, enqueue_seq
LIMIT $2
FOR UPDATE SKIP LOCKED;

-- name: next_seqs
-- Draw $1 event positions from the writers' sequence.
SELECT nextval('event_seq') FROM generate_series(1, $1);

-- name: server_now_and_seqs
-- A batch's time and the enqueue positions of the jobs it creates, in one round trip.
SELECT clock_timestamp(), array(SELECT nextval('event_seq') FROM generate_series(1, $1));

-- name: next_seqs_alone
-- next_seqs as a statement of its own (autocommit). Drawing values writes WAL, so its
-- commit would wait for a WAL flush; it need not: the flush that uses the values
-- commits durably after them, and values no durable row uses may be drawn again.
SELECT nextval('event_seq')
FROM set_config('synchronous_commit', 'off', true), generate_series(1, $1);

-- name: server_now_and_seqs_alone
-- server_now_and_seqs as a statement of its own (autocommit), without waiting for a
-- WAL flush at its commit (see next_seqs_alone).
SELECT clock_timestamp(), array(SELECT nextval('event_seq') FROM generate_series(1, $1)),
       set_config('synchronous_commit', 'off', true);

-- name: insert_events
-- Used to import a log; batches write through `flush`.
INSERT INTO events (seq, tenant_id, job_id, version, type, data)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::bytea[]);

-- name: insert_jobs
-- Insert job rows, given column by column.
INSERT INTO jobs (enqueue_seq, tenant_id, job_id, status, queue, priority, job_type, run_at,
                  lease_expires_at, idempotency_key, version, state, dependents)
SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                     $6::smallint[], $7::text[], $8::bigint[], $9::bigint[], $10::text[],
                     $11::integer[], $12::bytea[], $13::integer[]);

-- name: insert_edges
-- Insert dependency edges, given column by column.
INSERT INTO job_edges (tenant_id, parent_id, child_seq, child_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]);

-- name: delete_edges
-- Delete every dependency edge (a projection rebuild).
DELETE FROM job_edges;

-- name: dependents_closure
-- Every dependency reachable from the given jobs, with each dependent's row: what a
-- batch that may end those jobs reads to settle the jobs waiting for them. Unordered
-- (the caller orders by tenant, parent, child_seq): a claiming batch plans with sorts
-- off (claims.py), which an ORDER BY here would turn into a walk of every edge.
WITH RECURSIVE closure(tenant_id, job_id) AS (
    SELECT * FROM unnest($1::text[], $2::text[])
    UNION
    SELECT e.tenant_id, e.child_id FROM job_edges e
    JOIN closure c ON e.tenant_id = c.tenant_id AND e.parent_id = c.job_id
)
SELECT e.tenant_id, e.parent_id, e.child_id, j.state, j.dependents, e.child_seq
FROM closure c
JOIN job_edges e ON e.tenant_id = c.tenant_id AND e.parent_id = c.job_id
JOIN jobs j ON j.tenant_id = e.tenant_id AND j.job_id = e.child_id;

-- name: has_dependencies
-- Whether the schema has the dependency index (version 3 on).
SELECT to_regclass('job_edges') IS NOT NULL;

-- name: dependencies
-- Every dependency edge, by tenant and child.
SELECT tenant_id, parent_id, child_id FROM job_edges ORDER BY tenant_id, child_seq, parent_id;

-- name: flush
-- A batch's writes in one atomic statement: its events, new jobs and moved jobs, one
-- parameter per column (packing.py: integer and name columns joined into one string).
-- A job update is guarded by its version; if any guarded row moved (or an event's
-- version is taken: unique violation), the statement fails whole (division by zero,
-- which backend.py names VersionGuardTripped), and the batch is re-run on fresh state. Returns the highest seq written. Unless $34 is NULL, it
-- also sends payload $35 on channel $34, delivered when the transaction commits (one
-- round trip less between a new job and the workers it wakes).
WITH new_events AS (
    INSERT INTO events (seq, tenant_id, job_id, version, type, data)
    SELECT coalesce(s, nextval('event_seq')), t, j, v, k, d
    FROM unnest(string_to_array($1::text, ',', 'n')::bigint[],
                string_to_array($2::text, E'\x1f', E'\x1e'),
                string_to_array($3::text, E'\x1f', E'\x1e'),
                string_to_array($4::text, ',', 'n')::integer[],
                string_to_array($5::text, E'\x1f', E'\x1e'),
                $6::bytea[])
         AS u(s, t, j, v, k, d)
    RETURNING seq
), new_jobs AS (
    INSERT INTO jobs (enqueue_seq, tenant_id, job_id, status, queue, priority, job_type,
                      run_at, lease_expires_at, idempotency_key, version, state, dependents)
    SELECT * FROM unnest(string_to_array($7::text, ',', 'n')::bigint[],
                         string_to_array($8::text, E'\x1f', E'\x1e'),
                         string_to_array($9::text, E'\x1f', E'\x1e'),
                         string_to_array($10::text, E'\x1f', E'\x1e'),
                         string_to_array($11::text, E'\x1f', E'\x1e'),
                         string_to_array($12::text, ',', 'n')::smallint[],
                         string_to_array($13::text, E'\x1f', E'\x1e'),
                         string_to_array($14::text, ',', 'n')::bigint[],
                         string_to_array($15::text, ',', 'n')::bigint[],
                         string_to_array($16::text, E'\x1f', E'\x1e'),
                         string_to_array($17::text, ',', 'n')::integer[],
                         $18::bytea[],
                         string_to_array($19::text, ',', 'n')::integer[])
    RETURNING 1
), moved_jobs AS (
    UPDATE jobs SET status = u.status, run_at = u.run_at,
                    lease_expires_at = u.lease_expires_at, version = u.version,
                    state = u.state, dependents = u.dependents
    FROM unnest(string_to_array($20::text, ',', 'n')::bigint[],
                string_to_array($21::text, ',', 'n')::integer[],
                string_to_array($22::text, E'\x1f', E'\x1e'),
                string_to_array($23::text, ',', 'n')::bigint[],
                string_to_array($24::text, ',', 'n')::bigint[],
                string_to_array($25::text, ',', 'n')::integer[],
                $26::bytea[],
                string_to_array($27::text, ',', 'n')::integer[],
                string_to_array($28::text, ',', 'n')::integer[])
         AS u(enqueue_seq, before_version, status, run_at, lease_expires_at, version, state,
              before_dependents, dependents)
    -- The keys again as an array: a range of jobs_pkey. Joined to `u` alone, the planner
    -- hashed or sorted every row of `jobs` for each batch.
    WHERE jobs.enqueue_seq = ANY (string_to_array($20::text, ',', 'n')::bigint[])
      AND jobs.enqueue_seq = u.enqueue_seq AND jobs.version = u.before_version
      AND jobs.dependents = u.before_dependents
    RETURNING 1
), new_edges AS (
    INSERT INTO job_edges (tenant_id, parent_id, child_seq, child_id)
    SELECT * FROM unnest($30::text[], $31::text[], $32::bigint[], $33::text[])
    RETURNING 1
)
SELECT (SELECT max(seq) FROM new_events)
       / ((SELECT count(*) FROM moved_jobs) = $29
          AND (SELECT count(*) FROM new_edges) = cardinality($30::text[]))::int,
       (SELECT pg_notify($34::text, $35::text) WHERE $34::text IS NOT NULL);

-- name: notify
-- Send payload $2 on channel $1, as a statement of its own (autocommit): its commit
-- need not wait for a WAL flush (a wake-up lost in a crash is harmless).
SELECT pg_notify($1, $2), set_config('synchronous_commit', 'off', true);

-- name: load_job
-- A tenant sees positions of its own: the enqueue position is the tenant position.
SELECT j.state, l.tpos FROM jobs j LEFT JOIN log l ON l.seq = j.enqueue_seq
WHERE j.tenant_id = $1 AND j.job_id = $2;

-- name: all_jobs
-- Every job with its enqueue event's log position, in enqueue order.
SELECT j.state, l.pos, j.tenant_id, j.job_id FROM jobs j LEFT JOIN log l ON l.seq = j.enqueue_seq
ORDER BY j.enqueue_seq;

-- name: jobs_of_tenant
-- A tenant's jobs with their enqueue event's tenant position.
SELECT j.state, l.tpos, j.tenant_id, j.job_id FROM jobs j LEFT JOIN log l ON l.seq = j.enqueue_seq
WHERE j.tenant_id = $1 ORDER BY j.enqueue_seq;

-- name: projection_rows
-- pos: the log position of the event the row's enqueue_seq names; for an event not
-- sequenced yet, its writer's number (as verify folds the unsealed tail); else NULL.
SELECT j.enqueue_seq, j.tenant_id, j.job_id, j.status, j.queue, j.priority, j.job_type,
       j.run_at, j.lease_expires_at, j.idempotency_key, j.version, j.state,
       coalesce(l.pos, (SELECT e.seq FROM events e WHERE e.seq = j.enqueue_seq)) AS pos
FROM jobs j LEFT JOIN log l ON l.seq = j.enqueue_seq
ORDER BY j.enqueue_seq;

-- name: history
-- A tenant sees its own positions only; an event not yet sequenced shows position 0.
SELECT coalesce(l.tpos, 0), e.data FROM events e LEFT JOIN log l ON l.seq = e.seq
WHERE e.tenant_id = $1 AND e.job_id = $2 ORDER BY e.version;

-- name: tenant_events
-- A tenant's numbered events, in tenant position order.
SELECT l.tpos, e.data FROM log l JOIN events e ON e.seq = l.seq
WHERE l.tenant_id = $1 ORDER BY l.tpos;

-- name: records
-- Numbered log records after position $1, in log order.
SELECT l.pos, e.tenant_id, e.job_id, e.version, e.type, e.data, l.hash, l.tpos
FROM log l JOIN events e ON e.seq = l.seq
WHERE l.pos > $1 ORDER BY l.pos LIMIT $2;

-- name: events_after
-- Numbered events after position $1, in log order.
SELECT l.pos, e.data FROM log l JOIN events e ON e.seq = l.seq
WHERE l.pos > $1 ORDER BY l.pos LIMIT $2;

-- name: unsealed
-- Committed events the sequencer has not numbered yet, in commit order.
SELECT e.seq, e.tenant_id, e.job_id, e.version, e.type, e.data FROM events e
WHERE NOT EXISTS (SELECT 1 FROM log l WHERE l.seq = e.seq)
ORDER BY e.xid, e.seq;

-- name: is_sealed
-- Whether the event written as seq $1 has a log position.
SELECT EXISTS (SELECT 1 FROM log WHERE seq = $1);

-- name: last_pos
-- The last log position the sequencer gave.
SELECT last_pos FROM log_head WHERE id = 1;

-- name: chain_heads
-- Each tenant's chain head: position and hash of its latest numbered event.
SELECT tenant_id, pos, hash FROM chain_heads ORDER BY tenant_id;

-- name: ready_tenants
-- Tenants with a job ready in one of the queues $1 at time $2.
SELECT DISTINCT tenant_id FROM jobs
WHERE status = 'enqueued' AND queue = ANY($1::text[]) AND run_at <= $2
ORDER BY tenant_id;

-- name: next_run_at
-- The earliest run time of an enqueued job in the queues $1.
SELECT min(run_at) FROM jobs WHERE status = 'enqueued' AND queue = ANY($1::text[]);

-- name: next_run_at_of_tenants
-- The earliest run time of an enqueued job of the tenants $2 in the queues $1.
SELECT min(run_at) FROM jobs
WHERE status = 'enqueued' AND queue = ANY($1::text[]) AND tenant_id = ANY($2::text[]);

-- name: all_events_by_job
-- Every event, grouped by job in version order (a projection rebuild).
SELECT seq, data FROM events ORDER BY tenant_id, job_id, version;

-- name: delete_jobs
-- Delete every job row (a projection rebuild).
DELETE FROM jobs;

-- name: lock_log_head
-- Lock the log head: the last position, the sequencer's cursor and pending writers.
SELECT last_pos, cursor_xid::text, cursor_seq, pending::text[] FROM log_head WHERE id = 1
FOR UPDATE;

-- name: try_lock_log_head
-- Lock the log head unless another step holds it (then no row).
SELECT last_pos, cursor_xid::text, cursor_seq, pending::text[] FROM log_head WHERE id = 1
FOR UPDATE SKIP LOCKED;

-- name: own_writers
-- The step's horizon and this queue's writers in flight. `horizon`: the statement
-- snapshot's xmax, taken before pg_locks is read, so a writer that gets its xid after
-- the read is past it. `writers`: the xids (as xid8, placed in the epoch nearest this
-- step's own xid) of transactions of other sessions holding a write lock on `events`.
-- Transactions that wrote nothing here (another database, schema or app table) never
-- appear, so they never hold numbering back.
WITH me AS (SELECT pg_current_xact_id()::text::bigint AS x),
held AS (
    SELECT DISTINCT t.transactionid::text::bigint AS x32
    FROM pg_locks r
    JOIN pg_locks t ON t.virtualtransaction = r.virtualtransaction
                   AND t.locktype = 'transactionid' AND t.mode = 'ExclusiveLock'
    WHERE r.locktype = 'relation' AND r.relation = 'events'::regclass
      AND r.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND r.mode = 'RowExclusiveLock' AND r.pid <> pg_backend_pid()
),
placed AS (
    SELECT ((me.x >> 32) << 32) + held.x32 AS x, me.x AS mine FROM held, me
)
SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS horizon,
       array(SELECT (CASE WHEN x > mine + 2147483648 THEN x - 4294967296
                          WHEN x < mine - 2147483648 THEN x + 4294967296
                          ELSE x END)::text FROM placed) AS writers;

-- name: sealable
-- Committed events not numbered yet: after the cursor and below the horizon $3, or of
-- the transactions $4 (pending or late writers) wherever the cursor is; `ready` says
-- whether the job's previous version is already numbered. Each part is an ordered
-- range of events_by_commit cut at $5, so a step reads at most $5 rows of each however
-- far numbering is behind. `OFFSET 0` keeps each lookup a per-row index probe: as joins,
-- a fresh queue's stale statistics make them hash joins that scan all of `events` and
-- `log` every step.
SELECT e.seq, e.xid::text, e.tenant_id, e.job_id, e.version, e.data,
       e.version = 1 OR EXISTS (
           SELECT 1 FROM events p JOIN log pl ON pl.seq = p.seq
           WHERE p.tenant_id = e.tenant_id AND p.job_id = e.job_id
             AND p.version = e.version - 1 OFFSET 0) AS ready,
       e.after_cursor
FROM ((SELECT a.*, true AS after_cursor FROM events a
       WHERE (a.xid, a.seq) > ($1::text::xid8, $2) AND a.xid < $3::text::xid8
         AND NOT EXISTS (SELECT 1 FROM log l WHERE l.seq = a.seq OFFSET 0)
       ORDER BY a.xid, a.seq
       LIMIT $5)
      UNION ALL
      (SELECT b.*, false FROM events b
       WHERE b.xid = ANY($4::text[]::xid8[])
         AND NOT ((b.xid, b.seq) > ($1::text::xid8, $2) AND b.xid < $3::text::xid8)
         AND NOT EXISTS (SELECT 1 FROM log l WHERE l.seq = b.seq OFFSET 0)
       ORDER BY b.xid, b.seq
       LIMIT $5)) AS e
ORDER BY e.xid, e.seq
LIMIT $5;

-- name: late_writers
-- Transactions that registered as late writers and have committed.
SELECT xid::text FROM late_writers;

-- name: forget_late_writers
-- Drop late writers whose events a step has looked up.
DELETE FROM late_writers WHERE xid = ANY($1::text[]::xid8[]);

-- name: join_writers
-- Make this transaction a writer the sequencer sees before it writes an event.
LOCK TABLE events IN ROW EXCLUSIVE MODE;

-- name: identity
-- What tells this queue's database apart: its name and the schema's oid ($1: the name).
SELECT current_database()::text, to_regnamespace(quote_ident($1))::oid::bigint;

-- name: path_and_identity
-- An application's connection: its search_path, and the identity above.
SELECT current_setting('search_path'), current_database()::text,
       to_regnamespace(quote_ident($1))::oid::bigint;

-- name: enter_schema
-- Name the queue's schema ($1, quoted) for the rest of the application's transaction, and
-- return the transaction's xid if it has one already.
SELECT pg_current_xact_id_if_assigned()::text FROM set_config('search_path', $1, true);

-- name: leave_schema
-- Give the application's transaction back its search_path $1.
SELECT set_config('search_path', $1, true);

-- name: register_late_writer
-- An app transaction with an xid from before its first write here: look it up by xid.
INSERT INTO late_writers (xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;

-- name: heads_of_tenants
-- The chain heads of some tenants.
SELECT tenant_id, tpos, hash FROM chain_heads WHERE tenant_id = ANY($1::text[]);

-- name: insert_log
-- Number events: their log rows, one parameter per column (packing.py).
INSERT INTO log (pos, seq, tenant_id, tpos, hash)
SELECT * FROM unnest(string_to_array($1::text, ',', 'n')::bigint[],
                     string_to_array($2::text, ',', 'n')::bigint[],
                     string_to_array($3::text, E'\x1f', E'\x1e'),
                     string_to_array($4::text, ',', 'n')::bigint[],
                     $5::bytea[]);

-- name: save_heads
-- Move tenants' chain heads, given column by column.
INSERT INTO chain_heads (tenant_id, pos, tpos, hash)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[])
ON CONFLICT (tenant_id) DO UPDATE
SET pos = excluded.pos, tpos = excluded.tpos, hash = excluded.hash;

-- name: move_cursor
-- Move the log head past the events a sequencer step numbered; $4 the writers pending.
UPDATE log_head SET last_pos = $1, cursor_xid = $2::text::xid8, cursor_seq = $3,
                    pending = $4::text[]::xid8[]
WHERE id = 1;

-- name: announce_worker
-- Store a worker's presence record, replacing its previous one.
INSERT INTO workers (worker_id, last_seen, data) VALUES ($1, $2, $3)
ON CONFLICT (worker_id) DO UPDATE SET last_seen = excluded.last_seen, data = excluded.data;

-- name: forget_workers
-- Forget presence records not refreshed since a time.
DELETE FROM workers WHERE last_seen < $1;

-- name: workers_seen_since
-- Presence records refreshed at or after a time.
SELECT data FROM workers WHERE last_seen >= $1;
