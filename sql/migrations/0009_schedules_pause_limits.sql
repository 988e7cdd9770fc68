-- Migration 0009: periodic jobs, paused queues, queue and per-key concurrency limits.
--
-- Periodic jobs:
--
-- * queueing_schedules: the schedules the workers' code declares (queueing.schedules),
--   registered by each worker's scheduler when it starts. registered_at is when a
--   schedule was first seen: no tick before it is ever run (a daily job deployed at 14:00
--   does not fire at once for that morning's 03:00).
-- * queueing_schedule_ticks: one row per tick run, and its primary key (schedule, tick) is
--   what makes a tick run once whatever the number of workers: every worker's scheduler
--   computes the same due ticks and inserts them with ON CONFLICT DO NOTHING, in the same
--   statement as the job of each tick it inserted (sql/queries.sql, fire_schedule_ticks),
--   so a tick row is inserted if and only if its job is (retention may delete the job
--   later; the tick row stays, the record that the tick ran). The job is an ordinary job (status
--   record, retries, cancel, history); its row carries its tick (schedule_tick).
-- * queueing_clock: the queue clock of tests. queueing_now_v1() is now() plus an offset that
--   only the test helper (testing_advance_clock) ever sets; the table is empty in
--   production, where it is now(). The scheduler reads the time through it, so a test
--   moves a schedule through hours of ticks without waiting for the wall clock.

CREATE TABLE queueing_clock (
    -- One row at most.
    id     boolean  PRIMARY KEY DEFAULT true CHECK (id),
    offset_by interval NOT NULL DEFAULT '0'
);

CREATE FUNCTION queueing_now_v1()
    RETURNS timestamptz
    LANGUAGE sql
    STABLE
AS $$
    SELECT now() + COALESCE((SELECT c.offset_by FROM queueing_clock AS c), interval '0')
$$;

CREATE TABLE queueing_schedules (
    name          text        PRIMARY KEY,
    task_name     text        NOT NULL,
    cron          text        NOT NULL,
    timezone      text        NOT NULL,
    queue_name    text        NOT NULL,
    args          jsonb       NOT NULL DEFAULT '{}',
    -- Queue clock (queueing_now_v1): first seen; last declared by a starting worker.
    registered_at timestamptz NOT NULL,
    seen_at       timestamptz NOT NULL
);

CREATE TABLE queueing_schedule_ticks (
    schedule_name text        NOT NULL,
    -- The tick, in the queue clock's time (the cron instant).
    tick_at       timestamptz NOT NULL,
    -- The tick's job (no foreign key: retention deletes jobs, the tick stays the record
    -- that this tick ran).
    job_id        bigint      NOT NULL,
    PRIMARY KEY (schedule_name, tick_at)
);

ALTER TABLE procrastinate_jobs ADD COLUMN schedule_tick timestamptz;

REVOKE ALL ON queueing_clock, queueing_schedules, queueing_schedule_ticks FROM PUBLIC;

-- Queue settings an operator changes at run time (queueing.queues): a paused queue's jobs
-- are claimed by no worker (the claim reads this table, queueing_claim_v5); max_active
-- bounds the jobs of the queue active at once across all workers. A queue without a row
-- is neither paused nor limited.
CREATE TABLE queueing_queues (
    name       text        PRIMARY KEY,
    paused     boolean     NOT NULL DEFAULT false,
    max_active integer     CHECK (max_active >= 1),
    changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- The claim reads the few queues that restrict it, not every row.
CREATE INDEX queueing_queues_restricted_idx ON queueing_queues (name)
    WHERE paused OR max_active IS NOT NULL;

REVOKE ALL ON queueing_queues FROM PUBLIC;

-- Per-key concurrency limits (queueing.tasks: concurrency_key, concurrency_limit). A job
-- with a key may start only while fewer than its limit of the key's jobs are active,
-- across all workers. The client sends the key and the limit inside the job's args under
-- the reserved key '_queueing_concurrency' and a trigger moves them into these columns
-- (as 0007 does with the trace context), so the enqueue functions stay as they are; the
-- trigger's WHEN is evaluated without calling plpgsql, so a job without a key pays nothing.
ALTER TABLE procrastinate_jobs
    ADD COLUMN concurrency_key text,
    ADD COLUMN concurrency_limit integer,
    ADD CONSTRAINT queueing_jobs_concurrency_check
        CHECK ((concurrency_key IS NULL) = (concurrency_limit IS NULL) AND concurrency_limit >= 1);

CREATE FUNCTION queueing_take_concurrency_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.concurrency_key := NEW.args -> '_queueing_concurrency' ->> 'key';
    NEW.concurrency_limit := (NEW.args -> '_queueing_concurrency' ->> 'limit')::integer;
    NEW.args := NEW.args - '_queueing_concurrency';
    RETURN NEW;
END;
$$;

CREATE TRIGGER queueing_take_concurrency_v1
    BEFORE INSERT ON procrastinate_jobs
    FOR EACH ROW
    WHEN (NEW.args ? '_queueing_concurrency')
    EXECUTE FUNCTION queueing_take_concurrency_v1();

-- The claim's paths (queueing_claim_v5). The paths of jobs without a key are 0008's,
-- with "concurrency_key IS NULL" added, so that a key's thousands of waiting jobs are
-- never walked by them; jobs with a key are read per key from their own index.
-- "priority IS NOT NULL" holds for every row (a NOT NULL column), but the planner does not
-- use the column's constraint to prove an index predicate: only a query that states it may
-- use this index, and only the all-queues claim does. A per-queue read (queue_name = x,
-- ORDER BY priority DESC, id) could otherwise walk this index with a filter: measured, with
-- the statistics of a freshly filled table, 863 buffers and 18 ms to claim 50 jobs of one
-- queue behind 50,000 of a paused one, where queueing_jobs_ready_queue_v2_idx takes a few.
CREATE INDEX queueing_jobs_ready_v2_idx ON procrastinate_jobs (priority DESC, id)
    WHERE status = 'todo' AND scheduled_at IS NULL AND NOT run_alone AND concurrency_key IS NULL
      AND priority IS NOT NULL;
CREATE INDEX queueing_jobs_ready_queue_v2_idx ON procrastinate_jobs (queue_name, priority DESC, id)
    WHERE status = 'todo' AND scheduled_at IS NULL AND NOT run_alone AND concurrency_key IS NULL;
CREATE INDEX queueing_jobs_due_v2_idx ON procrastinate_jobs (scheduled_at, id)
    WHERE status = 'todo' AND scheduled_at IS NOT NULL AND NOT run_alone AND concurrency_key IS NULL;
-- Jobs waiting for their key, per key in claim order.
CREATE INDEX queueing_jobs_keyed_idx ON procrastinate_jobs (concurrency_key, priority DESC, id)
    WHERE status = 'todo' AND concurrency_key IS NOT NULL AND NOT run_alone;
-- What a key's limit counts: its active jobs. (A queue's limit counts its active jobs on
-- procrastinate's index of every active job, procrastinate_jobs_lock_idx_v1: at most the
-- workers' total concurrency. An index of its own would be written by every claim and
-- every finish, limited or not.)
CREATE INDEX queueing_jobs_key_active_idx ON procrastinate_jobs (concurrency_key)
    WHERE status IN ('doing', 'aborting') AND concurrency_key IS NOT NULL;
-- 0008's paths are replaced by the v2 indexes above; queueing_claim_v4 (release 8's
-- workers, during a rolling deploy) still runs without them, on the older indexes.
DROP INDEX queueing_jobs_ready_idx;
DROP INDEX queueing_jobs_ready_queue_idx;

-- The claim when something restricts it. Serialised per key and per limited queue by
-- transaction-level advisory locks, taken (try, never wait) by statements that run
-- BEFORE the statement that counts the active jobs and picks the candidates: in READ
-- COMMITTED that statement's snapshot is taken after the locks were granted, so it sees
-- every claim committed by the lock's previous holder, and no other claim of that key or
-- queue can commit until this one does. A key or queue whose lock another claim holds is
-- skipped this round (claimed by that one). Slots come back by themselves: a limit counts
-- the jobs that are doing/aborting now, so a job that leaves that status (finished,
-- rescued, cancelled, interrupted) frees its slot in the commit that moves it.
CREATE FUNCTION queueing_claim_restricted_v1(
    p_queues  character varying[],
    p_limit   integer,
    p_paused  text[],
    p_limited text[]
)
    RETURNS bigint[]
    LANGUAGE plpgsql
    SET enable_seqscan = off
    SET enable_bitmapscan = off
AS $$
DECLARE
    _held    text[] := '{}';   -- limited queues whose lock this claim holds
    _blocked text[];           -- queues nothing may be claimed from this round
    _queues  text[];           -- queues served, for jobs without a key
    _keys    text[] := '{}';   -- keys whose lock this claim holds
    _ids     bigint[];
BEGIN
    IF p_limited IS NOT NULL THEN
        SELECT COALESCE(array_agg(l.name), '{}') INTO _held
          FROM unnest(p_limited) AS l(name)
         WHERE (p_queues IS NULL OR l.name = ANY(p_queues))
           AND pg_try_advisory_xact_lock(hashtext('queueing_queue_limit'), hashtext(l.name));
    END IF;
    _blocked := COALESCE(p_paused, '{}')
                || ARRAY(SELECT unnest(COALESCE(p_limited, '{}')) EXCEPT SELECT unnest(_held));
    -- Jobs without a key: per served queue (one index descent each), so a paused or full
    -- queue's jobs are never walked. All queues: the queues holding such jobs, by a
    -- skip scan of queueing_jobs_ready_queue_v2_idx (one probe per queue).
    IF p_queues IS NOT NULL THEN
        _queues := ARRAY(SELECT unnest(p_queues::text[]) EXCEPT SELECT unnest(_blocked));
    ELSE
        -- Ordered as the index is, so no other index (procrastinate's on queue_name
        -- holds every job) can serve the probe without a sort.
        WITH RECURSIVE q AS (
            (SELECT j.queue_name FROM procrastinate_jobs AS j
              WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND NOT j.run_alone
                AND j.concurrency_key IS NULL
              ORDER BY j.queue_name, j.priority DESC, j.id LIMIT 1)
            UNION ALL
            SELECT (SELECT j.queue_name FROM procrastinate_jobs AS j
                     WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND NOT j.run_alone
                       AND j.concurrency_key IS NULL AND j.queue_name > q.queue_name
                     ORDER BY j.queue_name, j.priority DESC, j.id LIMIT 1)
              FROM q WHERE q.queue_name IS NOT NULL
        )
        SELECT ARRAY(SELECT q.queue_name::text FROM q WHERE q.queue_name IS NOT NULL
                     EXCEPT SELECT unnest(_blocked)) INTO _queues;
    END IF;
    -- The keys with waiting jobs (a skip scan of queueing_jobs_keyed_idx), each locked.
    WITH RECURSIVE k AS (
        (SELECT j.concurrency_key AS key FROM procrastinate_jobs AS j
          WHERE j.status = 'todo' AND j.concurrency_key IS NOT NULL AND NOT j.run_alone
          ORDER BY j.concurrency_key, j.priority DESC, j.id LIMIT 1)
        UNION ALL
        SELECT (SELECT j.concurrency_key FROM procrastinate_jobs AS j
                 WHERE j.status = 'todo' AND j.concurrency_key IS NOT NULL AND NOT j.run_alone
                   AND j.concurrency_key > k.key
                 ORDER BY j.concurrency_key, j.priority DESC, j.id LIMIT 1)
          FROM k WHERE k.key IS NOT NULL
    )
    SELECT COALESCE(array_agg(k.key), '{}') INTO _keys
      FROM k
     WHERE k.key IS NOT NULL
       AND pg_try_advisory_xact_lock(hashtext('queueing_key'), hashtext(k.key));
    -- A new statement, so a new snapshot: taken after every lock above was granted.
    WITH room AS (
        SELECT h.name, GREATEST(0, q.max_active
               -- On an index of the doing jobs (at most the workers' concurrency): the
               -- "|| ''" keeps procrastinate's index of every job on queue_name out.
               - (SELECT count(*) FROM procrastinate_jobs AS a
                   WHERE a.status = 'doing' AND a.queue_name || '' = h.name))::integer
               AS free
          FROM unnest(_held) AS h(name)
          JOIN queueing_queues AS q ON q.name = h.name
    ), ready AS (
        SELECT r.id, r.priority, r.queue_name
          FROM unnest(_queues) AS s(name)
          LEFT JOIN room ON room.name = s.name
         CROSS JOIN LATERAL (
               SELECT j.id, j.priority, j.queue_name
                 FROM procrastinate_jobs AS j
                WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND NOT j.run_alone
                  AND j.concurrency_key IS NULL AND j.queue_name = s.name
                ORDER BY j.queue_name, j.priority DESC, j.id ASC
                LIMIT LEAST(p_limit, COALESCE(room.free, p_limit))
                  FOR UPDATE SKIP LOCKED) AS r
    ), due AS (
        SELECT j.id, j.priority, j.queue_name
          FROM procrastinate_jobs AS j
         WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
           AND j.scheduled_at <= now() AND NOT j.run_alone AND j.concurrency_key IS NULL
           AND (p_queues IS NULL OR j.queue_name = ANY(p_queues))
           AND j.queue_name <> ALL(_blocked)
         ORDER BY j.scheduled_at ASC, j.id ASC
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), keys AS (
        -- A key's limit is that of its job next in line (jobs of a key share one).
        SELECT k.key, GREATEST(0,
               (SELECT j.concurrency_limit FROM procrastinate_jobs AS j
                 WHERE j.status = 'todo' AND j.concurrency_key = k.key AND NOT j.run_alone
                 ORDER BY j.concurrency_key, j.priority DESC, j.id ASC LIMIT 1)
               - (SELECT count(*) FROM procrastinate_jobs AS a
                   WHERE a.concurrency_key = k.key AND a.status IN ('doing', 'aborting')))::integer
               AS free
          FROM unnest(_keys) AS k(key)
    ), keyed AS (
        SELECT c.id, c.priority, c.queue_name
          FROM keys
         CROSS JOIN LATERAL (
               SELECT j.id, j.priority, j.queue_name
                 FROM procrastinate_jobs AS j
                WHERE j.status = 'todo' AND j.concurrency_key = keys.key AND NOT j.run_alone
                  AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
                  AND (p_queues IS NULL OR j.queue_name = ANY(p_queues))
                  AND j.queue_name <> ALL(_blocked)
                ORDER BY j.concurrency_key, j.priority DESC, j.id ASC
                LIMIT LEAST(p_limit, keys.free)
                  FOR UPDATE SKIP LOCKED) AS c
    ), ranked AS (
        -- A limited queue's room holds across the three kinds of candidates.
        SELECT b.id, b.priority, b.queue_name,
               row_number() OVER (PARTITION BY b.queue_name ORDER BY b.priority DESC, b.id) AS n
          FROM (TABLE ready UNION ALL TABLE due UNION ALL TABLE keyed) AS b
    )
    SELECT array_agg(c.id) INTO _ids
      FROM (SELECT r.id FROM ranked AS r
              LEFT JOIN room ON room.name = r.queue_name
             WHERE room.free IS NULL OR r.n <= room.free
             ORDER BY r.priority DESC, r.id ASC
             LIMIT p_limit) AS c;
    RETURN _ids;
END;
$$;

-- Claim, as queueing_claim_v4, and: a paused queue's jobs are not claimed; a queue's
-- max_active and a key's limit hold across all workers; each job's schedule tick is
-- returned (the handler's ctx.schedule_tick), and whether a limit (its key's, its queue's)
-- counted it: the worker wakes its claim loop when such a job's outcome is committed, the
-- moment its slot is free in the database. Unrestricted (no queue paused or limited,
-- no job with a key waiting: two index probes tell), it runs 0008's paths.
CREATE FUNCTION queueing_claim_v5(
    p_queues    character varying[],
    p_worker_id bigint,
    p_limit     integer,
    p_idle      boolean
)
    RETURNS TABLE (id bigint, task_name character varying, queue_name character varying,
                   args jsonb, attempts integer, max_attempts integer,
                   tenant_id text, user_id text, run_alone boolean,
                   due_at timestamptz, trace_context jsonb, schedule_tick timestamptz,
                   limited boolean)
    LANGUAGE plpgsql
    SET enable_seqscan = off
    SET enable_bitmapscan = off
AS $$
DECLARE
    _ids     bigint[];
    _paused  text[];
    _limited text[];
    _key     text;
BEGIN
    SELECT array_agg(q.name) FILTER (WHERE q.paused),
           array_agg(q.name) FILTER (WHERE NOT q.paused)
      INTO _paused, _limited
      FROM queueing_queues AS q
     WHERE q.paused OR q.max_active IS NOT NULL;
    IF p_idle THEN
        -- The worker runs nothing: it may take a job that must run alone (0006). Its key
        -- and its queue's limit are not counted: it runs once, alone, to find a poison pill.
        SELECT array_agg(j.id) INTO _ids
          FROM (SELECT j.id
                  FROM procrastinate_jobs AS j
                 WHERE j.status = 'todo' AND j.run_alone
                   AND (p_queues IS NULL OR j.queue_name = ANY(p_queues))
                   AND (_paused IS NULL OR j.queue_name <> ALL(_paused))
                   AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
                 ORDER BY j.priority DESC, j.id ASC
                 LIMIT 1
                   FOR UPDATE SKIP LOCKED) AS j;
    END IF;
    IF _ids IS NULL AND _paused IS NULL AND _limited IS NULL THEN
        -- Is a job with a key waiting? One probe of queueing_jobs_keyed_idx: ordered as
        -- that index is, so the planner cannot pick an index of every pending job and
        -- walk it (with none waiting, the whole of it).
        SELECT j.concurrency_key INTO _key
          FROM procrastinate_jobs AS j
         WHERE j.status = 'todo' AND j.concurrency_key IS NOT NULL AND NOT j.run_alone
         ORDER BY j.concurrency_key, j.priority DESC, j.id
         LIMIT 1;
    END IF;
    IF _ids IS NULL AND (_paused IS NOT NULL OR _limited IS NOT NULL OR _key IS NOT NULL) THEN
        _ids := queueing_claim_restricted_v1(p_queues, p_limit, _paused, _limited);
    ELSIF _ids IS NULL AND p_queues IS NULL THEN
        -- Nothing restricts this claim: 0008's paths (queueing_claim_v4), on the v2 indexes.
        WITH ready AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND NOT j.run_alone
               AND j.concurrency_key IS NULL AND j.priority IS NOT NULL
             ORDER BY j.priority DESC, j.id ASC
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        ), due AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
               AND j.scheduled_at <= now() AND NOT j.run_alone AND j.concurrency_key IS NULL
             ORDER BY j.scheduled_at ASC
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        )
        SELECT array_agg(c.id) INTO _ids
          FROM (SELECT b.id FROM (TABLE ready UNION ALL TABLE due) AS b
                 ORDER BY b.priority DESC, b.id ASC
                 LIMIT p_limit) AS c;
    ELSIF _ids IS NULL THEN
        WITH ready AS (
            SELECT r.id, r.priority
              FROM unnest(p_queues) AS q(name)
             CROSS JOIN LATERAL (
                   SELECT j.id, j.priority
                     FROM procrastinate_jobs AS j
                    WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND NOT j.run_alone
                      AND j.concurrency_key IS NULL AND j.queue_name = q.name
                    ORDER BY j.priority DESC, j.id ASC
                    LIMIT p_limit
                      FOR UPDATE SKIP LOCKED) AS r
        ), due AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
               AND j.scheduled_at <= now() AND NOT j.run_alone AND j.concurrency_key IS NULL
               AND j.queue_name = ANY(p_queues)
             ORDER BY j.scheduled_at ASC
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        )
        SELECT array_agg(c.id) INTO _ids
          FROM (SELECT b.id FROM (TABLE ready UNION ALL TABLE due) AS b
                 ORDER BY b.priority DESC, b.id ASC
                 LIMIT p_limit) AS c;
    END IF;
    -- The rows are locked by this transaction since the SELECTs above, still 'todo'.
    RETURN QUERY
    UPDATE procrastinate_jobs AS j
       SET status = 'doing', worker_id = p_worker_id, attempts = j.attempts + 1
     WHERE j.id = ANY(_ids)
    RETURNING j.id, j.task_name, j.queue_name, j.args, j.attempts, j.max_attempts,
              j.tenant_id, j.user_id, j.run_alone, GREATEST(j.scheduled_at, j.created_at),
              j.trace_context, j.schedule_tick,
              j.concurrency_key IS NOT NULL OR j.queue_name = ANY(_limited);
END;
$$;
