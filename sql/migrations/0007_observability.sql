-- Migration 0007: what the worker's metrics need from the claim and the rescue.
--
-- * trace_context: the W3C trace context (traceparent, tracestate) of the span a job was
--   enqueued in, NULL when none was active (or OpenTelemetry is not installed). The
--   client sends it inside the job's args under the reserved key '_queueing_trace', and a
--   trigger moves it into this column before the row is written: so the enqueue
--   functions (queueing_enqueue_v1, _v2, which the previous release calls too) stay as
--   they are, and the handler's arguments never show the key. The trigger's WHEN is
--   evaluated without calling plpgsql, so an untraced insert pays nothing measurable.
-- * queueing_claim_v3: as queueing_claim_v2, plus each job's due time (due_at: the later
--   of scheduled_at and created_at; scheduled_at is NULL for a job due at once), so the
--   worker reports the pickup latency (handler start minus due time) with no second
--   query, and its trace_context, which its attempt's span is parented and linked to.
-- * queueing_rescue_v3: as queueing_rescue_v2, plus each rescued job's queue and task, so
--   the worker counts rescues per queue and task from the rows the rescue committed.
--
-- Whole copies, not wrappers joining the v2 functions' rows back to procrastinate_jobs: a
-- plpgsql function's statements take snapshots of their own, so a job inserted after the
-- outer statement began could be claimed by v2 and then not be found by the join: claimed,
-- never returned, never run.
--
-- Compatibility (docs/design.md): queueing_claim_v2 and queueing_rescue_v2, which the
-- previous release (schema 6) calls, stay for its workers still running during a rolling
-- deploy.

ALTER TABLE procrastinate_jobs ADD COLUMN trace_context jsonb;

CREATE FUNCTION queueing_take_trace_context_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    NEW.trace_context := NEW.args -> '_queueing_trace';
    NEW.args := NEW.args - '_queueing_trace';
    RETURN NEW;
END;
$$;

CREATE TRIGGER queueing_take_trace_context_v1
    BEFORE INSERT ON procrastinate_jobs
    FOR EACH ROW
    WHEN (NEW.args ? '_queueing_trace')
    EXECUTE FUNCTION queueing_take_trace_context_v1();

CREATE FUNCTION queueing_claim_v3(
    p_queues    character varying[],
    p_worker_id bigint,
    p_limit     integer,
    p_idle      boolean
)
    RETURNS TABLE (id bigint, task_name character varying, queue_name character varying,
                   args jsonb, attempts integer, max_attempts integer,
                   tenant_id text, user_id text, run_alone boolean,
                   due_at timestamptz, trace_context jsonb)
    LANGUAGE plpgsql
    -- See queueing_claim_v1: walk the (priority DESC, id) partial indexes in order.
    SET enable_seqscan = off
    SET enable_bitmapscan = off
AS $$
BEGIN
    IF p_idle THEN
        RETURN QUERY
        WITH candidate AS (
            SELECT j.id
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.run_alone
               AND (p_queues IS NULL OR j.queue_name = ANY(p_queues))
               AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
             ORDER BY j.priority DESC, j.id ASC
             LIMIT 1
               FOR UPDATE SKIP LOCKED
        )
        UPDATE procrastinate_jobs AS j
           SET status = 'doing', worker_id = p_worker_id, attempts = j.attempts + 1
          FROM candidate
         WHERE j.id = candidate.id
        RETURNING j.id, j.task_name, j.queue_name, j.args, j.attempts, j.max_attempts,
                  j.tenant_id, j.user_id, j.run_alone, GREATEST(j.scheduled_at, j.created_at),
                  j.trace_context;
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    WITH candidate AS (
        SELECT j.id
          FROM procrastinate_jobs AS j
         WHERE j.status = 'todo' AND NOT j.run_alone
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
              j.tenant_id, j.user_id, j.run_alone, GREATEST(j.scheduled_at, j.created_at),
                  j.trace_context;
END;
$$;

CREATE FUNCTION queueing_rescue_v3(p_stalled_after interval, p_limit integer)
    RETURNS TABLE (id bigint, status text, queue_name character varying,
                   task_name character varying)
    LANGUAGE plpgsql
AS $$
DECLARE
    _dead bigint[];
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('queueing_maintenance'), 1) THEN
        RETURN;
    END IF;
    SELECT COALESCE(array_agg(w.id), '{}') INTO _dead
      FROM procrastinate_workers AS w
     WHERE w.last_heartbeat < clock_timestamp() - p_stalled_after;
    RETURN QUERY
    WITH lost AS (
        SELECT j.id, j.worker_id, j.attempts,
               (j.attempts >= j.max_attempts AND NOT j.run_alone AND NOT j.abort_requested
                -- It had neighbours: another job was active on the same worker. (Those
                -- given back by an earlier batch of this rescue no longer count; with
                -- batches of 500, only a worker running more than 500 jobs meets that.)
                AND EXISTS (SELECT 1 FROM procrastinate_jobs AS n
                             WHERE n.worker_id = j.worker_id AND n.status = 'doing'
                               AND n.id <> j.id)) AS isolate
          FROM procrastinate_jobs AS j
         WHERE j.status = 'doing' AND (j.worker_id = ANY(_dead) OR j.worker_id IS NULL)
         ORDER BY j.id
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), rescued AS (
        UPDATE procrastinate_jobs AS j
           SET status = (CASE WHEN j.abort_requested THEN 'aborted'
                              WHEN l.isolate THEN 'todo'
                              WHEN j.attempts >= j.max_attempts THEN 'failed'
                              ELSE 'todo' END)::procrastinate_job_status,
               abort_requested = false,
               worker_id = NULL,
               scheduled_at = NULL,
               run_alone = j.run_alone OR l.isolate,
               attempts = CASE WHEN l.isolate THEN j.attempts - 1 ELSE j.attempts END,
               error = jsonb_build_object(
                   'type', 'WorkerLost',
                   'message', 'worker ' || COALESCE(l.worker_id::text, '?')
                              || ' stopped heartbeating while running attempt '
                              || l.attempts
                              || CASE WHEN l.isolate
                                      THEN ' (attempts spent: it runs once more, alone)'
                                      ELSE '' END,
                   'traceback', NULL)
          FROM lost AS l
         WHERE j.id = l.id
        RETURNING j.id, j.status, j.started_at, j.updated_at, j.error, l.worker_id, l.attempts,
                  j.queue_name, j.task_name
    ), history AS (
        INSERT INTO queueing_attempts
               (job_id, attempt, worker_id, started_at, finished_at, outcome, error)
        SELECT r.id, r.attempts, r.worker_id, r.started_at, r.updated_at, 'worker_lost', r.error
          FROM rescued AS r
    )
    SELECT r.id, queueing_status_name_v1(r.status), r.queue_name, r.task_name FROM rescued AS r;
    DELETE FROM procrastinate_workers AS w
     WHERE w.id = ANY(_dead)
       AND NOT EXISTS (SELECT 1 FROM procrastinate_jobs AS j
                        WHERE j.worker_id = w.id AND j.status = 'doing');
END;
$$;
