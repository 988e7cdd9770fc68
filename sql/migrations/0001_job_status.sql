-- 0001: the job status record lives on procrastinate's own job row.
--
-- Why one row: the status a user reads and the queue state a worker claims are then the
-- same column (procrastinate_jobs.status), so they cannot disagree and no second write
-- exists to race. The columns below carry what the queue itself does not: ownership,
-- progress, result, error and an ordered set of timestamps. docs/design.md has the
-- measurements behind this choice.

ALTER TABLE procrastinate_jobs
    ADD COLUMN tenant_id       text,
    ADD COLUMN user_id         text,
    ADD COLUMN progress        smallint    NOT NULL DEFAULT 0,
    ADD COLUMN progress_detail jsonb,
    ADD COLUMN result          jsonb,
    ADD COLUMN error           jsonb,
    ADD COLUMN max_attempts    integer     NOT NULL DEFAULT 1,
    ADD COLUMN created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    ADD COLUMN started_at      timestamptz,
    ADD COLUMN finished_at     timestamptz,
    ADD COLUMN updated_at      timestamptz NOT NULL DEFAULT clock_timestamp();

-- Rows written before this migration: give terminal ones a finish time so the
-- constraints below hold for them too.
UPDATE procrastinate_jobs
   SET finished_at = created_at
 WHERE status IN ('succeeded', 'failed', 'cancelled', 'aborted');

ALTER TABLE procrastinate_jobs
    ADD CONSTRAINT queueing_progress_range
        CHECK (progress BETWEEN 0 AND 100),
    ADD CONSTRAINT queueing_max_attempts_positive
        CHECK (max_attempts >= 1),
    ADD CONSTRAINT queueing_started_after_created
        CHECK (started_at IS NULL OR created_at <= started_at),
    ADD CONSTRAINT queueing_finished_after_started
        CHECK (finished_at IS NULL OR (created_at <= finished_at
                                       AND (started_at IS NULL OR started_at <= finished_at))),
    ADD CONSTRAINT queueing_finished_iff_terminal
        CHECK ((finished_at IS NOT NULL)
               = (status IN ('succeeded', 'failed', 'cancelled', 'aborted')));

-- Timestamps are stamped by the database on every status change, whoever makes it
-- (our worker, procrastinate's functions, an operator's UPDATE). GREATEST() makes the
-- order hold by construction even when the claiming transaction began before the
-- enqueue committed, or the clock steps back.
CREATE FUNCTION queueing_stamp_job_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    _now timestamptz := clock_timestamp();
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NEW.status IN ('doing', 'aborting') THEN
            NEW.started_at := GREATEST(_now, NEW.created_at);
            NEW.finished_at := NULL;
        ELSIF NEW.status IN ('succeeded', 'failed', 'cancelled', 'aborted') THEN
            NEW.finished_at := GREATEST(_now, NEW.created_at, NEW.started_at);
        ELSE
            NEW.finished_at := NULL;
        END IF;
    END IF;
    -- updated_at is never older than any other timestamp of the row.
    NEW.updated_at := GREATEST(_now, OLD.updated_at, NEW.started_at, NEW.finished_at);
    RETURN NEW;
END;
$$;

CREATE TRIGGER queueing_stamp_job_v1
    BEFORE UPDATE ON procrastinate_jobs
    FOR EACH ROW EXECUTE FUNCTION queueing_stamp_job_v1();

-- Waiters (wait_for, `jobs watch`) LISTEN on one channel; the payload is only a hint
-- ("job N changed"): they re-read the row before believing anything.
CREATE FUNCTION queueing_notify_job_changed_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_notify('queueing_job_changed_v1', NEW.id::text);
    RETURN NULL;
END;
$$;

CREATE TRIGGER queueing_notify_job_changed_v1
    AFTER UPDATE OF status, progress, progress_detail ON procrastinate_jobs
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.progress IS DISTINCT FROM NEW.progress
          OR OLD.progress_detail IS DISTINCT FROM NEW.progress_detail)
    EXECUTE FUNCTION queueing_notify_job_changed_v1();

-- Listing by owner, newest first, with keyset pagination on id. (Every status change
-- is a non-HOT update that writes to every index, so indexes are added sparingly.)
CREATE INDEX queueing_jobs_tenant_user_id_idx ON procrastinate_jobs (tenant_id, user_id, id DESC);

CREATE INDEX queueing_jobs_due_idx ON procrastinate_jobs (scheduled_at)
    WHERE status = 'todo' AND scheduled_at IS NOT NULL;

-- Our status names over procrastinate's states.
CREATE FUNCTION queueing_status_name_v1(s procrastinate_job_status)
    RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE s
        WHEN 'todo'      THEN 'pending'
        WHEN 'doing'     THEN 'active'
        WHEN 'aborting'  THEN 'active'
        WHEN 'succeeded' THEN 'completed'
        WHEN 'failed'    THEN 'failed'
        WHEN 'cancelled' THEN 'cancelled'
        WHEN 'aborted'   THEN 'cancelled'
    END
$$;

-- The status record as users read it. Every read goes through this view, and every
-- write function below returns its rows, so there is one definition of a record.
CREATE VIEW queueing_jobs AS
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
       updated_at
  FROM procrastinate_jobs;

-- Enqueue many jobs in one statement; returns their records in input order.
-- The jobs come as one JSON array of objects: one parameter that the client encodes in C
-- and the server decodes in one pass (eight typed arrays cost the client ~7 us a job).
-- procrastinate's AFTER INSERT trigger (see 0003) sends the per-queue "job_inserted" hint.
CREATE FUNCTION queueing_enqueue_v1(p_jobs json)
    RETURNS SETOF queueing_jobs
    LANGUAGE plpgsql
AS $$
DECLARE
    _ids bigint[];
BEGIN
    WITH inserted AS (
        INSERT INTO procrastinate_jobs
               (queue_name, task_name, priority, args, scheduled_at, tenant_id, user_id, max_attempts)
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
    RETURN QUERY SELECT * FROM queueing_jobs WHERE id = ANY(_ids) ORDER BY id;
END;
$$;

-- Claim up to p_limit due jobs for one worker: SKIP LOCKED, highest priority first,
-- then oldest. attempts counts attempts started, so it is bumped here.
CREATE FUNCTION queueing_claim_v1(
    p_queues    character varying[],
    p_worker_id bigint,
    p_limit     integer
)
    RETURNS TABLE (id bigint, task_name character varying, queue_name character varying,
                   args jsonb, attempts integer, max_attempts integer,
                   tenant_id text, user_id text)
    LANGUAGE sql
    -- Always walk the (priority DESC, id) partial index in order and stop at p_limit.
    -- Queue tables' statistics are always stale; with them the planner may choose a
    -- bitmap scan of every pending job plus a sort, which is O(queue length) per claim.
    SET enable_seqscan = off
    SET enable_bitmapscan = off
AS $$
    WITH candidate AS (
        SELECT j.id
          FROM procrastinate_jobs AS j
         WHERE j.status = 'todo'
           AND (p_queues IS NULL OR j.queue_name = ANY(p_queues))
           AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
         ORDER BY j.priority DESC, j.id ASC
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    )
    UPDATE procrastinate_jobs AS j
       SET status = 'doing', worker_id = p_worker_id, attempts = j.attempts + 1
      FROM candidate
     WHERE j.id = candidate.id
    RETURNING j.id, j.task_name, j.queue_name, j.args, j.attempts, j.max_attempts,
              j.tenant_id, j.user_id
$$;

-- Record the outcome of many attempts in one statement. Each row is fenced by
-- (worker, attempt): a late finish from an attempt that is no longer current changes
-- nothing. A cancel requested while the job ran wins over its outcome, so a job never
-- ends "completed" with a cancel pending.
--   p_outcomes: 'succeeded' | 'failed' | 'retry' | 'cancelled' | 'interrupted'
CREATE FUNCTION queueing_finish_v1(
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
        SELECT j.id, o.result, o.error, o.retry_at, o.outcome,
               (CASE
                    WHEN j.abort_requested OR o.outcome = 'cancelled' THEN 'aborted'
                    WHEN o.outcome = 'succeeded' THEN 'succeeded'
                    WHEN o.outcome = 'failed' THEN 'failed'
                    ELSE 'todo'
                END)::procrastinate_job_status AS new_status
          FROM outcome AS o
          JOIN procrastinate_jobs AS j ON j.id = o.id
         -- Find the batch's rows by primary key (id = ANY). The other two conditions are
         -- written so that no partial index matches them (status::text, IS NOT DISTINCT
         -- FROM): with stale statistics the planner otherwise walks every running job
         -- through such an index and compares each with every outcome (running x batch).
         WHERE j.id = ANY(p_ids)
           AND j.status::text = 'doing' AND j.worker_id IS NOT DISTINCT FROM p_worker_id
           AND j.attempts = o.attempt
           FOR UPDATE OF j
    )
    UPDATE procrastinate_jobs AS j
       SET status = d.new_status,
           result = CASE WHEN d.new_status = 'succeeded' THEN d.result END,
           error = CASE WHEN d.new_status = 'succeeded' THEN NULL ELSE COALESCE(d.error, j.error) END,
           progress = CASE WHEN d.new_status = 'succeeded' THEN 100 ELSE j.progress END,
           abort_requested = false,
           worker_id = CASE WHEN d.new_status = 'todo' THEN NULL ELSE j.worker_id END,
           scheduled_at = CASE WHEN d.new_status = 'todo' THEN d.retry_at ELSE j.scheduled_at END,
           -- An attempt cut short by a worker shutdown is not the job's fault.
           attempts = CASE WHEN d.new_status = 'todo' AND d.outcome = 'interrupted'
                           THEN j.attempts - 1 ELSE j.attempts END
      FROM decided AS d
     WHERE j.id = d.id
    RETURNING j.id, queueing_status_name_v1(j.status)
$$;

-- Cancel: a pending job becomes cancelled at once; an active one is asked to stop
-- (procrastinate's trigger then sends "abort_job_requested" to the workers).
-- Returns the record only if this call changed it.
CREATE FUNCTION queueing_cancel_v1(p_job_id bigint)
    RETURNS SETOF queueing_jobs
    LANGUAGE plpgsql
AS $$
DECLARE
    _id bigint;
BEGIN
    UPDATE procrastinate_jobs SET status = 'cancelled'
     WHERE procrastinate_jobs.id = p_job_id AND status = 'todo'
    RETURNING procrastinate_jobs.id INTO _id;
    IF _id IS NULL THEN
        UPDATE procrastinate_jobs SET abort_requested = true
         WHERE procrastinate_jobs.id = p_job_id AND status = 'doing' AND NOT abort_requested
        RETURNING procrastinate_jobs.id INTO _id;
    END IF;
    RETURN QUERY SELECT * FROM queueing_jobs WHERE queueing_jobs.id = _id;
END;
$$;

-- Wake the workers of a queue: the same hint procrastinate sends on insert.
CREATE FUNCTION queueing_wake_workers_v1(p_queue character varying, p_job_id bigint)
    RETURNS void
    LANGUAGE plpgsql
AS $$
DECLARE
    payload text := json_build_object('type', 'job_inserted', 'job_id', p_job_id)::text;
BEGIN
    PERFORM pg_notify('procrastinate_queue_v1#' || p_queue, payload);
    PERFORM pg_notify('procrastinate_any_queue_v1', payload);
END;
$$;

-- Re-run a failed or cancelled job: same id, attempts continue, one more attempt allowed.
CREATE FUNCTION queueing_retry_v1(p_job_id bigint)
    RETURNS SETOF queueing_jobs
    LANGUAGE plpgsql
AS $$
DECLARE
    _queue character varying;
BEGIN
    UPDATE procrastinate_jobs
       SET status = 'todo', scheduled_at = NULL, abort_requested = false, worker_id = NULL,
           result = NULL, progress = 0, progress_detail = NULL,
           max_attempts = GREATEST(max_attempts, attempts + 1)
     WHERE procrastinate_jobs.id = p_job_id AND status IN ('failed', 'cancelled', 'aborted')
    RETURNING queue_name INTO _queue;
    IF _queue IS NOT NULL THEN
        PERFORM queueing_wake_workers_v1(_queue, p_job_id);
    END IF;
    RETURN QUERY SELECT * FROM queueing_jobs WHERE queueing_jobs.id = p_job_id AND _queue IS NOT NULL;
END;
$$;

-- Make a delayed job, or one waiting out a retry backoff, due now.
CREATE FUNCTION queueing_run_now_v1(p_job_id bigint)
    RETURNS SETOF queueing_jobs
    LANGUAGE plpgsql
AS $$
DECLARE
    _queue character varying;
BEGIN
    UPDATE procrastinate_jobs SET scheduled_at = NULL
     WHERE procrastinate_jobs.id = p_job_id AND status = 'todo'
    RETURNING queue_name INTO _queue;
    IF _queue IS NOT NULL THEN
        PERFORM queueing_wake_workers_v1(_queue, p_job_id);
    END IF;
    RETURN QUERY SELECT * FROM queueing_jobs WHERE queueing_jobs.id = p_job_id AND _queue IS NOT NULL;
END;
$$;
