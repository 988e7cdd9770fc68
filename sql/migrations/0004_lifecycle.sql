-- 0004: the job lifecycle rules, enforced in the database so that racing processes
-- cannot break them: deduplication that returns the existing job, cancellation with
-- ownership, attempt history, rescue of jobs whose worker died, bounded retention.

ALTER TABLE procrastinate_jobs
    ADD COLUMN dedupe_key   text,
    ADD COLUMN cancelled_by text,
    ADD COLUMN cancelled_at timestamptz,
    ADD CONSTRAINT queueing_dedupe_key_length CHECK (length(dedupe_key) <= 256);

-- While a job with a key is pending or active, no second one with the same key (in the
-- same tenant) can exist: the backstop under the advisory lock of queueing_enqueue_v2.
CREATE UNIQUE INDEX queueing_jobs_dedupe_live_idx
    ON procrastinate_jobs (COALESCE(tenant_id, ''), dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('todo', 'doing');
-- Finding a key's recent jobs, any status (for dedupe_for windows after completion).
CREATE INDEX queueing_jobs_dedupe_idx
    ON procrastinate_jobs (COALESCE(tenant_id, ''), dedupe_key, id DESC)
    WHERE dedupe_key IS NOT NULL;
-- Retention scans finished jobs per queue by age.
CREATE INDEX queueing_jobs_finished_idx
    ON procrastinate_jobs (queue_name, status, finished_at)
    WHERE finished_at IS NOT NULL;

-- One row per finished attempt: what happened, on which worker, when.
CREATE TABLE queueing_attempts (
    id          bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
    job_id      bigint      NOT NULL REFERENCES procrastinate_jobs (id) ON DELETE CASCADE,
    attempt     integer     NOT NULL,
    worker_id   bigint,
    started_at  timestamptz,
    finished_at timestamptz NOT NULL,
    outcome     text        NOT NULL
        CHECK (outcome IN ('completed', 'failed', 'retry', 'cancelled', 'interrupted', 'worker_lost')),
    error       jsonb
);
CREATE INDEX queueing_attempts_job_idx ON queueing_attempts (job_id, id);

-- The record as users read it, now with dedupe key and who cancelled it.
CREATE OR REPLACE VIEW queueing_jobs AS
SELECT id,
       task_name,
       queue_name AS queue,
       tenant_id,
       user_id,
       queueing_status_name_v1(status) AS status,
       progress,
       progress_detail,
       args,
       result,
       error,
       attempts,
       max_attempts,
       priority,
       abort_requested AS cancel_requested,
       worker_id,
       created_at,
       COALESCE(scheduled_at, created_at) AS scheduled_at,
       started_at,
       finished_at,
       updated_at,
       dedupe_key,
       cancelled_by,
       cancelled_at
  FROM procrastinate_jobs;

-- The rows of an enqueue call's JSON array, numbered in input order.
CREATE FUNCTION queueing_enqueue_rows_v1(p_jobs json)
    RETURNS TABLE (queue_name character varying, task_name character varying,
                   priority integer, args jsonb, scheduled_at timestamptz, tenant_id text,
                   user_id text, max_attempts integer, dedupe_key text, dedupe_for interval,
                   n bigint)
    LANGUAGE sql STABLE
AS $$
    SELECT * FROM ROWS FROM (
        json_to_recordset(p_jobs) AS (queue_name character varying,
                                      task_name character varying, priority integer,
                                      args jsonb, scheduled_at timestamptz, tenant_id text,
                                      user_id text, max_attempts integer, dedupe_key text,
                                      dedupe_for interval)
    ) WITH ORDINALITY
$$;

-- Enqueue with deduplication. Jobs without a dedupe key are inserted in one statement;
-- each keyed job takes a transaction-level advisory lock on (tenant, key), so that
-- concurrent enqueuers of one key queue up behind each other, then returns the live
-- job with that key (or, with dedupe_for, one completed within that window) instead of
-- inserting a second. Returns, in input order, each job's record as JSON with
-- "created": whether this call created it.
CREATE FUNCTION queueing_enqueue_v2(p_jobs json)
    RETURNS TABLE (job text)
    LANGUAGE plpgsql
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
         ORDER BY j.id DESC
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

-- Finish, as queueing_finish_v1, and record each attempt in queueing_attempts.
CREATE FUNCTION queueing_finish_v2(
    p_worker_id bigint,
    p_ids       bigint[],
    p_attempts  integer[],
    p_outcomes  text[],
    p_results   jsonb[],
    p_errors    jsonb[],
    p_retry_at  timestamptz[]
)
    RETURNS TABLE (id bigint, status text)
    LANGUAGE sql
AS $$
    WITH outcome AS MATERIALIZED (
        SELECT * FROM unnest(p_ids, p_attempts, p_outcomes, p_results, p_errors, p_retry_at)
                 AS o(id, attempt, outcome, result, error, retry_at)
    ), decided AS (
        SELECT j.id, o.attempt, o.result, o.error, o.retry_at, o.outcome,
               (CASE
                    WHEN j.abort_requested OR o.outcome = 'cancelled' THEN 'aborted'
                    WHEN o.outcome = 'succeeded' THEN 'succeeded'
                    WHEN o.outcome = 'failed' THEN 'failed'
                    ELSE 'todo'
                END)::procrastinate_job_status AS new_status
          FROM outcome AS o
          JOIN procrastinate_jobs AS j ON j.id = o.id
         -- See queueing_finish_v1 for why the conditions are written this way.
         WHERE j.id = ANY(p_ids)
           AND j.status::text = 'doing' AND j.worker_id IS NOT DISTINCT FROM p_worker_id
           AND j.attempts = o.attempt
           FOR UPDATE OF j
    ), updated AS (
        UPDATE procrastinate_jobs AS j
           SET status = d.new_status,
               result = CASE WHEN d.new_status = 'succeeded' THEN d.result END,
               error = CASE WHEN d.new_status = 'succeeded' THEN NULL
                            ELSE COALESCE(d.error, j.error) END,
               progress = CASE WHEN d.new_status = 'succeeded' THEN 100 ELSE j.progress END,
               abort_requested = false,
               worker_id = CASE WHEN d.new_status = 'todo' THEN NULL ELSE j.worker_id END,
               scheduled_at = CASE WHEN d.new_status = 'todo' THEN d.retry_at
                                   ELSE j.scheduled_at END,
               attempts = CASE WHEN d.new_status = 'todo' AND d.outcome = 'interrupted'
                               THEN j.attempts - 1 ELSE j.attempts END
          FROM decided AS d
         WHERE j.id = d.id
        RETURNING j.id, j.status, j.started_at, j.updated_at, j.error, d.attempt, d.outcome
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
    SELECT u.id, queueing_status_name_v1(u.status) FROM updated AS u
$$;

-- One job's record as JSON text (as the read queries return it), or NULL.
CREATE FUNCTION queueing_job_json_v1(p_job_id bigint)
    RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT to_jsonb(v)::text FROM queueing_jobs AS v WHERE v.id = p_job_id
$$;

-- Cancel on behalf of an actor: 'system' (anything), 'admin' of p_tenant (any job of
-- that tenant) or 'user' p_user of p_tenant (their own jobs). A job of another tenant
-- is reported as not found, so that its existence is not revealed. Returns what happened
-- (cancelled, stop_requested, already_requested, not_found, not_allowed, terminal) and,
-- unless not_found/not_allowed, the record as it is after this call, read in the same
-- transaction.
CREATE FUNCTION queueing_cancel_v2(
    p_job_id bigint, p_actor text, p_tenant text, p_user text
)
    RETURNS TABLE (outcome text, job text)
    LANGUAGE plpgsql
AS $$
DECLARE
    _job procrastinate_jobs;
    _by text;
BEGIN
    IF p_actor NOT IN ('system', 'admin', 'user') THEN
        RAISE EXCEPTION 'unknown actor kind %', p_actor;
    END IF;
    SELECT * INTO _job FROM procrastinate_jobs WHERE id = p_job_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::text;
        RETURN;
    END IF;
    IF p_actor <> 'system' AND _job.tenant_id IS DISTINCT FROM p_tenant THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::text;
        RETURN;
    END IF;
    IF p_actor = 'user' AND _job.user_id IS DISTINCT FROM p_user THEN
        RETURN QUERY SELECT 'not_allowed'::text, NULL::text;
        RETURN;
    END IF;
    IF _job.status NOT IN ('todo', 'doing') THEN
        RETURN QUERY SELECT 'terminal'::text, queueing_job_json_v1(p_job_id);
        RETURN;
    END IF;
    _by := CASE p_actor
               WHEN 'system' THEN 'system'
               WHEN 'admin' THEN 'admin:' || p_tenant
               ELSE 'user:' || p_user
           END;
    IF _job.status = 'todo' THEN
        UPDATE procrastinate_jobs
           SET status = 'cancelled', cancelled_by = _by, cancelled_at = clock_timestamp()
         WHERE id = p_job_id;
        RETURN QUERY SELECT 'cancelled'::text, queueing_job_json_v1(p_job_id);
        RETURN;
    END IF;
    IF _job.abort_requested THEN
        RETURN QUERY SELECT 'already_requested'::text, queueing_job_json_v1(p_job_id);
        RETURN;
    END IF;
    -- procrastinate's trigger sends "abort_job_requested" to the workers.
    UPDATE procrastinate_jobs
       SET abort_requested = true, cancelled_by = _by, cancelled_at = clock_timestamp()
     WHERE id = p_job_id;
    RETURN QUERY SELECT 'stop_requested'::text, queueing_job_json_v1(p_job_id);
        RETURN;
END;
$$;

-- Retry on behalf of an actor: only 'system' or an 'admin' of the job's tenant.
-- Returns what happened (retried, not_found, not_allowed, not_retryable) and the record.
CREATE FUNCTION queueing_retry_v2(p_job_id bigint, p_actor text, p_tenant text)
    RETURNS TABLE (outcome text, job text)
    LANGUAGE plpgsql
AS $$
DECLARE
    _job procrastinate_jobs;
BEGIN
    SELECT * INTO _job FROM procrastinate_jobs WHERE id = p_job_id FOR UPDATE;
    IF NOT FOUND OR (p_actor <> 'system' AND _job.tenant_id IS DISTINCT FROM p_tenant) THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::text;
        RETURN;
    END IF;
    IF p_actor NOT IN ('system', 'admin') THEN
        RETURN QUERY SELECT 'not_allowed'::text, NULL::text;
        RETURN;
    END IF;
    IF _job.status NOT IN ('failed', 'cancelled', 'aborted') THEN
        RETURN QUERY SELECT 'not_retryable'::text, queueing_job_json_v1(p_job_id);
        RETURN;
    END IF;
    UPDATE procrastinate_jobs
       SET status = 'todo', scheduled_at = NULL, abort_requested = false, worker_id = NULL,
           result = NULL, progress = 0, progress_detail = NULL, cancelled_by = NULL,
           cancelled_at = NULL, max_attempts = GREATEST(max_attempts, attempts + 1)
     WHERE id = p_job_id;
    PERFORM queueing_wake_workers_v1(_job.queue_name, p_job_id);
    RETURN QUERY SELECT 'retried'::text, queueing_job_json_v1(p_job_id);
        RETURN;
END;
$$;

-- Rescue the active jobs of workers that stopped heartbeating (killed, host lost):
-- back to pending, or failed when their attempts are spent (cancelled if a cancel was
-- pending), each with a 'worker_lost' attempt row; then forget those workers. A late
-- finish from such a worker is fenced out by queueing_finish_v2 (worker and attempt).
CREATE FUNCTION queueing_rescue_v1(p_stalled_after interval, p_limit integer)
    RETURNS TABLE (id bigint, status text)
    LANGUAGE plpgsql
AS $$
DECLARE
    _dead bigint[];
BEGIN
    SELECT COALESCE(array_agg(w.id), '{}') INTO _dead
      FROM procrastinate_workers AS w
     WHERE w.last_heartbeat < clock_timestamp() - p_stalled_after;
    RETURN QUERY
    WITH lost AS (
        SELECT j.id, j.worker_id, j.attempts
          FROM procrastinate_jobs AS j
         WHERE j.status = 'doing' AND (j.worker_id = ANY(_dead) OR j.worker_id IS NULL)
         ORDER BY j.id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), rescued AS (
        UPDATE procrastinate_jobs AS j
           SET status = (CASE WHEN j.abort_requested THEN 'aborted'
                              WHEN j.attempts >= j.max_attempts THEN 'failed'
                              ELSE 'todo' END)::procrastinate_job_status,
               abort_requested = false,
               worker_id = NULL,
               scheduled_at = NULL,
               error = jsonb_build_object(
                   'type', 'WorkerLost',
                   'message', 'worker ' || COALESCE(l.worker_id::text, '?')
                              || ' stopped heartbeating while running attempt '
                              || l.attempts,
                   'traceback', NULL)
          FROM lost AS l
         WHERE j.id = l.id
        RETURNING j.id, j.status, j.started_at, j.updated_at, j.error, l.worker_id, l.attempts
    ), history AS (
        INSERT INTO queueing_attempts
               (job_id, attempt, worker_id, started_at, finished_at, outcome, error)
        SELECT r.id, r.attempts, r.worker_id, r.started_at, r.updated_at, 'worker_lost', r.error
          FROM rescued AS r
    )
    SELECT r.id, queueing_status_name_v1(r.status) FROM rescued AS r;
    DELETE FROM procrastinate_workers AS w
     WHERE w.id = ANY(_dead)
       AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs AS j
                        WHERE j.worker_id = w.id AND j.status = 'doing');
END;
$$;

-- Retention: delete up to p_limit finished jobs of one queue (NULL: every queue) that
-- are past their keep: completed ones older than p_completed_age or not among the
-- newest p_completed_keep of their queue; failed and cancelled ones older than
-- p_failed_age. Pending and active jobs are never touched. Returns how many it deleted.
CREATE FUNCTION queueing_prune_v1(
    p_queue character varying,
    p_completed_age interval,
    p_completed_keep integer,
    p_failed_age interval,
    p_limit integer
)
    RETURNS integer
    LANGUAGE plpgsql
AS $$
DECLARE
    _deleted integer;
BEGIN
    WITH ranked AS (
        SELECT j.id, j.status, j.finished_at,
               row_number() OVER (PARTITION BY j.queue_name ORDER BY j.finished_at DESC, j.id DESC)
                   AS newest
          FROM procrastinate_jobs AS j
         WHERE j.status = 'succeeded' AND j.finished_at IS NOT NULL
           AND (p_queue IS NULL OR j.queue_name = p_queue)
    ), doomed AS (
        SELECT r.id FROM ranked AS r
         WHERE (p_completed_age IS NOT NULL AND r.finished_at < clock_timestamp() - p_completed_age)
            OR (p_completed_keep IS NOT NULL AND r.newest > p_completed_keep)
        UNION ALL
        SELECT j.id FROM procrastinate_jobs AS j
         WHERE j.status IN ('failed', 'cancelled', 'aborted')
           AND (p_queue IS NULL OR j.queue_name = p_queue)
           AND p_failed_age IS NOT NULL
           AND j.finished_at < clock_timestamp() - p_failed_age
    ), batch AS (
        SELECT j.id FROM procrastinate_jobs AS j
         WHERE j.id IN (SELECT d.id FROM doomed AS d)
           AND j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), deleted AS (
        DELETE FROM procrastinate_jobs AS j USING batch AS b WHERE j.id = b.id RETURNING j.id
    )
    SELECT count(*) INTO _deleted FROM deleted;
    RETURN _deleted;
END;
$$;
