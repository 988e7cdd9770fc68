-- 0012: lighter status changes. What a claim and a finish write per job, cut to what the
-- guarantees need (measured: docs/benchmarks.md, "What changed since run B").
--
-- 1. queueing_finish_v4: one UPDATE ... FROM unnest(outcomes), in plpgsql.
--    queueing_finish_v3 read the jobs FOR UPDATE in one CTE and updated them from it in
--    the next; an UPDATE that joins a CTE carries each of its rows along as a whole-row
--    value (for the recheck of a concurrently updated row), and building those took a
--    tenth of the server's CPU in a drain. And a sql function's statement is parsed and
--    planned on every call (PostgreSQL 15); plpgsql keeps its plan. The status an
--    outcome leads to is one inlined function, queueing_outcome_status_v1.
-- 2. Job-change hints once per statement: queueing_jobs_changed_v2 carries the ids of
--    the statement's updated jobs, comma-separated (at most 350 per notification), in
--    place of one queueing_job_changed_v1 notification per row. A claim or finish of 100
--    jobs sends one notification, not 100. Hints stay hints: an update that changed
--    neither status nor progress may send one too, and readers re-read the row.
-- 3. Timestamps: the claim (queueing_claim_v6: queueing_claim_v5 with this change, and
--    jit off) and the finish set started_at / finished_at / updated_at in their own UPDATE, as
--    queueing_stamp_job_v1 does; the trigger now skips an update that set updated_at
--    itself, and still stamps every other one. Per row, a plpgsql trigger call less.
-- 4. Indexes a status change no longer writes: each claim and finish inserted an entry
--    in every index whose predicate the new row matched (no update here can be HOT: the
--    status is in the partial indexes' predicates).
--    - procrastinate_jobs_queue_name_idx_v1 (every job): dropped. The claims read their
--      queue through the ready/due indexes (0008, 0009), retention through
--      queueing_jobs_finished_idx.
--    - queueing_jobs_tenant_user_id_idx: only jobs with a tenant. Every reader of it
--      filters on tenant_id = ..., which implies tenant_id IS NOT NULL.
--    - procrastinate_jobs_queueing_lock_idx_v1 (unique): only jobs with a queueing lock
--      (NULLs never conflict in a unique index; every enqueue wrote an entry).
--    - procrastinate_jobs_id_lock_idx_v1: only jobs with a lock (procrastinate reads it
--      by lock = ...). Its unique index of every doing job, procrastinate_jobs_lock_idx_v1,
--      stays: a queue's max_active counts the queue's active jobs on it (0009).
-- 5. queueing_attempts.job_id: no foreign key. Its check ran a query per attempt row
--    inserted, for rows that queueing's own functions insert beside the update of that
--    job's row (it exists, and they hold its lock). The foreign key's ON DELETE CASCADE
--    becomes a statement trigger: deleting jobs deletes their attempts in the same
--    statement, and TRUNCATE of the jobs empties the attempts.
--
-- 6. queueing_enqueue_v3: queueing_enqueue_v1 with sequential scans off, returning
--    each record as JSON text. v1 re-reads the inserted rows by id = ANY(ids), and a
--    session that enqueued first into an empty table kept the plan made then, a
--    sequential scan, while the table grew: each single enqueue read every row (3,000
--    enqueues into a new table: 550 us of server CPU each).
-- 7. queueing_enqueue_v4: queueing_enqueue_v2 (jobs with a dedupe key) with the same
--    fix, and its key lookup ordered as queueing_jobs_dedupe_idx is: with a plan made on
--    an empty table the lookup walked the primary key backwards past every job (keyed
--    single enqueues on one connection: 850 us of server CPU each at 1,500 jobs in the
--    table, 1,700 us at 6,000).
--
-- Release 11's calls stay (tests/test_schema.py RELEASE_CALLS): queueing_claim_v5,
-- queueing_finish_v3, queueing_enqueue_v1 and _v2 are kept, and work on the new indexes
-- and triggers. Its clients listen on the v1 channel, which falls silent: their waits see
-- changes at their next poll instead.

CREATE FUNCTION queueing_outcome_status_v1(
    p_abort_requested boolean, p_outcome queueing_outcome_v1
) RETURNS procrastinate_job_status
    -- STABLE, not IMMUTABLE: the text-to-enum cast is stable, and an IMMUTABLE function
    -- with a stable body is not inlined (it would run as a query per row).
    LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT (CASE
        WHEN p_abort_requested THEN 'aborted'
        WHEN p_outcome = 'cancelled' THEN 'aborted'
        WHEN p_outcome = 'succeeded' THEN 'succeeded'
        WHEN p_outcome = 'failed' THEN 'failed'
        ELSE 'todo'  -- retry, interrupted
    END)::procrastinate_job_status
$$;

CREATE FUNCTION queueing_finish_v4(
    p_worker_id bigint, p_ids bigint[], p_attempts integer[],
    p_outcomes queueing_outcome_v1[], p_results jsonb[], p_errors jsonb[],
    p_retry_at timestamptz[]
) RETURNS TABLE(id bigint, status text)
    -- plpgsql, not sql: PostgreSQL 15 parses and plans a sql function's statement on
    -- every call; plpgsql keeps the plan.
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    _now timestamptz := clock_timestamp();
BEGIN
    RETURN QUERY
    WITH updated AS (
        -- Stamped here, as queueing_stamp_job_v1 would (setting updated_at skips it):
        -- finished_at when the job ends, cleared when it goes back to pending.
        UPDATE procrastinate_jobs AS j
           SET status = queueing_outcome_status_v1(j.abort_requested, o.outcome),
               result = CASE WHEN queueing_outcome_status_v1(j.abort_requested, o.outcome)
                                  = 'succeeded' THEN o.result END,
               error = CASE WHEN queueing_outcome_status_v1(j.abort_requested, o.outcome)
                                 = 'succeeded' THEN NULL
                            ELSE COALESCE(o.error, j.error) END,
               progress = CASE WHEN queueing_outcome_status_v1(j.abort_requested, o.outcome)
                                    = 'succeeded' THEN 100 ELSE j.progress END,
               abort_requested = false,
               worker_id = CASE WHEN queueing_outcome_status_v1(j.abort_requested, o.outcome)
                                     = 'todo' THEN NULL ELSE j.worker_id END,
               scheduled_at = CASE WHEN queueing_outcome_status_v1(j.abort_requested, o.outcome)
                                        = 'todo' THEN o.retry_at ELSE j.scheduled_at END,
               -- An attempt cut short by a worker shutdown is not the job's fault.
               attempts = CASE WHEN NOT j.abort_requested AND o.outcome = 'interrupted'
                               THEN j.attempts - 1 ELSE j.attempts END,
               finished_at = CASE WHEN queueing_outcome_status_v1(j.abort_requested, o.outcome)
                                       = 'todo' THEN NULL
                                  ELSE GREATEST(_now, j.created_at, j.started_at) END,
               updated_at = GREATEST(_now, j.updated_at, j.created_at, j.started_at)
          FROM unnest(p_ids, p_attempts, p_outcomes, p_results, p_errors, p_retry_at)
                 AS o(id, attempt, outcome, result, error, retry_at)
         -- Fencing: only the attempt this worker holds. The rows are found by primary
         -- key; the other conditions are written so that no partial index matches them
         -- (see queueing_finish_v1).
         WHERE j.id = o.id
           AND j.status::text = 'doing' AND j.worker_id IS NOT DISTINCT FROM p_worker_id
           AND j.attempts = o.attempt
        RETURNING j.id, j.status, j.started_at, j.updated_at, j.error, o.attempt, o.outcome
    ), history AS (
        INSERT INTO queueing_attempts
               (job_id, attempt, worker_id, started_at, finished_at, outcome, error)
        SELECT u.id, u.attempt, p_worker_id, u.started_at, u.updated_at,
               CASE WHEN u.status = 'aborted' THEN 'cancelled'
                    WHEN u.status = 'succeeded' THEN 'completed'
                    WHEN u.status = 'failed' THEN 'failed'
                    WHEN u.outcome = 'interrupted' THEN 'interrupted'
                    ELSE 'retry' END,
               CASE WHEN u.status = 'succeeded' THEN NULL ELSE u.error END
          FROM updated AS u
    )
    SELECT u.id, queueing_status_name_v1(u.status) FROM updated AS u;
END;
$$;

-- 2. Hints once per statement.
CREATE FUNCTION queueing_notify_jobs_changed_v2() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    _ids bigint[];
BEGIN
    SELECT array_agg(n.id) INTO _ids FROM changed_jobs AS n;
    -- 350 ids of at most 20 characters each stay under NOTIFY's 8,000-byte payload.
    FOR _first IN 1 .. coalesce(cardinality(_ids), 0) BY 350 LOOP
        PERFORM pg_notify('queueing_jobs_changed_v2',
                          array_to_string(_ids[_first:_first + 349], ','));
    END LOOP;
    RETURN NULL;
END;
$$;

DROP TRIGGER queueing_notify_job_changed_v1 ON procrastinate_jobs;
DROP FUNCTION queueing_notify_job_changed_v1();
CREATE TRIGGER queueing_notify_jobs_changed_v2
    AFTER UPDATE ON procrastinate_jobs
    REFERENCING NEW TABLE AS changed_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queueing_notify_jobs_changed_v2();

-- Claims and finishes stamp their rows themselves (above and below); the trigger still
-- stamps every other update (procrastinate's functions, an operator's UPDATE): those
-- leave updated_at as it was.
DROP TRIGGER queueing_stamp_job_v1 ON procrastinate_jobs;
CREATE TRIGGER queueing_stamp_job_v1
    BEFORE UPDATE ON procrastinate_jobs
    FOR EACH ROW WHEN (OLD.updated_at IS NOT DISTINCT FROM NEW.updated_at)
    EXECUTE FUNCTION queueing_stamp_job_v1();

-- queueing_claim_v5 (0009), its timestamps set in its own UPDATE (3. above); the rest
-- is unchanged.
CREATE FUNCTION queueing_claim_v6(
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
    -- A plan that meets a disabled scan costs 1e10 and would be JIT-compiled on every
    -- call (hundreds of ms) although it never runs that scan.
    SET jit = off
AS $$
DECLARE
    _ids     bigint[];
    _paused  text[];
    _limited text[];
    _key     text;
    _now     timestamptz;
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
    _now := clock_timestamp();
    RETURN QUERY
    -- Stamped here, as queueing_stamp_job_v1 would (setting updated_at skips it).
    UPDATE procrastinate_jobs AS j
       SET status = 'doing', worker_id = p_worker_id, attempts = j.attempts + 1,
           started_at = GREATEST(_now, j.created_at), finished_at = NULL,
           updated_at = GREATEST(_now, j.updated_at, j.created_at)
     WHERE j.id = ANY(_ids)
    RETURNING j.id, j.task_name, j.queue_name, j.args, j.attempts, j.max_attempts,
              j.tenant_id, j.user_id, j.run_alone, GREATEST(j.scheduled_at, j.created_at),
              j.trace_context, j.schedule_tick,
              j.concurrency_key IS NOT NULL OR j.queue_name = ANY(_limited);
END;
$$;


-- 4. Indexes.
DROP INDEX procrastinate_jobs_queue_name_idx_v1;
DROP INDEX queueing_jobs_tenant_user_id_idx;
CREATE INDEX queueing_jobs_tenant_user_id_v2_idx
    ON procrastinate_jobs (tenant_id, user_id, id DESC) WHERE tenant_id IS NOT NULL;
-- Same name: procrastinate tells a queueing-lock conflict by this index's name.
DROP INDEX procrastinate_jobs_queueing_lock_idx_v1;
CREATE UNIQUE INDEX procrastinate_jobs_queueing_lock_idx_v1
    ON procrastinate_jobs (queueing_lock) WHERE status = 'todo' AND queueing_lock IS NOT NULL;
DROP INDEX procrastinate_jobs_id_lock_idx_v1;
CREATE INDEX queueing_jobs_id_lock_idx
    ON procrastinate_jobs (id, lock)
    WHERE status IN ('todo', 'doing') AND lock IS NOT NULL;

-- 5. Attempts go with their job.
ALTER TABLE queueing_attempts DROP CONSTRAINT queueing_attempts_job_id_fkey;

CREATE FUNCTION queueing_delete_attempts_v1() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- Not TRUNCATE: that fails when the same statement truncates both tables.
        DELETE FROM queueing_attempts;
    ELSE
        DELETE FROM queueing_attempts AS a USING deleted_jobs AS d WHERE a.job_id = d.id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER queueing_delete_attempts_v1
    AFTER DELETE ON procrastinate_jobs
    REFERENCING OLD TABLE AS deleted_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queueing_delete_attempts_v1();
CREATE TRIGGER queueing_truncate_attempts_v1
    AFTER TRUNCATE ON procrastinate_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queueing_delete_attempts_v1();

-- 6. The enqueue's re-read by primary key, whatever the table's size when it was planned.
CREATE FUNCTION queueing_enqueue_v3(p_jobs json)
    -- Each record as one JSON text (as queueing_enqueue_v2 returns them): the client
    -- parses one column per job instead of building and converting 24.
    RETURNS TABLE (job text)
    LANGUAGE plpgsql
    SET enable_seqscan = off
    SET jit = off
AS $$
DECLARE
    _ids bigint[];
BEGIN
    WITH inserted AS (
        INSERT INTO procrastinate_jobs
               (queue_name, task_name, priority, args, scheduled_at, tenant_id, user_id,
                max_attempts)
        SELECT j.queue_name, j.task_name, j.priority, j.args, j.scheduled_at, j.tenant_id,
               j.user_id, j.max_attempts
          FROM ROWS FROM (
                   json_to_recordset(p_jobs) AS (queue_name character varying,
                                                 task_name character varying,
                                                 priority integer, args jsonb,
                                                 scheduled_at timestamptz, tenant_id text,
                                                 user_id text, max_attempts integer)
               ) WITH ORDINALITY AS j(queue_name, task_name, priority, args, scheduled_at,
                                      tenant_id, user_id, max_attempts, n)
         ORDER BY j.n
        RETURNING id
    )
    SELECT array_agg(id) INTO _ids FROM inserted;
    RETURN QUERY
        SELECT (to_jsonb(v) || '{"created": true}'::jsonb)::text
          FROM queueing_jobs AS v
         WHERE v.id = ANY(_ids)
         ORDER BY v.id;
END;
$$;

-- 7. The keyed enqueue (queueing_enqueue_v2) with the same fix, and its key lookup
--    ordered as its index is.
CREATE FUNCTION queueing_enqueue_v4(p_jobs json)
    RETURNS TABLE (job text)
    LANGUAGE plpgsql
    SET enable_seqscan = off
    SET jit = off
AS $$
DECLARE
    _plain_ids bigint[];
    _keyed_n integer[] := '{}';
    _keyed_ids bigint[] := '{}';
    _keyed_created boolean[] := '{}';
    _row record;
    _id bigint;
BEGIN
    -- Jobs without a key: one insert. Ids are drawn in ORDER BY n order, so the k-th
    -- smallest id belongs to the k-th keyless row.
    WITH inserted AS (
        INSERT INTO procrastinate_jobs
               (queue_name, task_name, priority, args, scheduled_at, tenant_id, user_id,
                max_attempts)
        SELECT b.queue_name, b.task_name, b.priority, b.args, b.scheduled_at, b.tenant_id,
               b.user_id, b.max_attempts
          FROM queueing_enqueue_rows_v1(p_jobs) AS b
         WHERE b.dedupe_key IS NULL
         ORDER BY b.n
        RETURNING id
    )
    SELECT array_agg(id ORDER BY id) INTO _plain_ids FROM inserted;

    -- Jobs with a key: one at a time, under the key's lock, which is held until commit.
    FOR _row IN
        SELECT * FROM queueing_enqueue_rows_v1(p_jobs) AS b WHERE b.dedupe_key IS NOT NULL ORDER BY b.n
    LOOP
        PERFORM pg_advisory_xact_lock(
            hashtextextended(COALESCE(_row.tenant_id, '') || chr(31) || _row.dedupe_key, 7));
        SELECT j.id INTO _id
          FROM procrastinate_jobs AS j
         WHERE COALESCE(j.tenant_id, '') = COALESCE(_row.tenant_id, '')
           AND j.dedupe_key = _row.dedupe_key
           AND (j.status IN ('todo', 'doing')
                OR (_row.dedupe_for IS NOT NULL AND j.status = 'succeeded'
                    AND j.finished_at > clock_timestamp() - _row.dedupe_for))
         -- Ordered as queueing_jobs_dedupe_idx is (equal on its first two columns), so
         -- no plan can walk the primary key backwards past every job instead.
         ORDER BY COALESCE(j.tenant_id, ''), j.dedupe_key, j.id DESC
         LIMIT 1;
        _keyed_n := _keyed_n || _row.n::integer;
        IF _id IS NOT NULL THEN
            _keyed_ids := _keyed_ids || _id;
            _keyed_created := _keyed_created || false;
        ELSE
            INSERT INTO procrastinate_jobs
                   (queue_name, task_name, priority, args, scheduled_at, tenant_id, user_id,
                    max_attempts, dedupe_key)
            VALUES (_row.queue_name, _row.task_name, _row.priority, _row.args,
                    _row.scheduled_at, _row.tenant_id, _row.user_id, _row.max_attempts,
                    _row.dedupe_key)
            RETURNING procrastinate_jobs.id INTO _id;
            _keyed_ids := _keyed_ids || _id;
            _keyed_created := _keyed_created || true;
        END IF;
    END LOOP;

    RETURN QUERY
        WITH placed AS (
            SELECT p.n, _plain_ids[row_number() OVER (ORDER BY p.n)] AS id, true AS created
              FROM queueing_enqueue_rows_v1(p_jobs) AS p
             WHERE p.dedupe_key IS NULL
            UNION ALL
            SELECT k.n, k.id, k.created
              FROM unnest(_keyed_n, _keyed_ids, _keyed_created) AS k(n, id, created)
        )
        SELECT (to_jsonb(v) || jsonb_build_object('created', c.created))::text
          FROM placed AS c
          JOIN queueing_jobs AS v ON v.id = c.id
         ORDER BY c.n;
END;
$$;

-- Called by no release since 0009.
DROP FUNCTION queueing_claim_v4(character varying[], bigint, integer, boolean);
