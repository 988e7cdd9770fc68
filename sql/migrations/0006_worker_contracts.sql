-- Migration 0006: contracts between the worker and the database that were bare strings
-- or decided on the client, and the functions replaced before 0005.
--
-- * Outcome kinds are a type: queueing_finish_v3 takes queueing_outcome_v1[], so a kind
--   the database does not know is refused by the cast (22P02), where queueing_finish_v2's
--   CASE turned any misspelt kind into a retry ("ELSE 'todo'").
-- * Rescue takes its maintenance lock inside its one statement (queueing_rescue_v2): the
--   worker runs it autocommitted, so the lock ends with the statement whatever the client
--   does next. queueing_rescue_v1 ran under a lock taken in a client-driven transaction; a
--   worker frozen before its COMMIT (SIGSTOP, a blocked event loop, a VM pause) held it,
--   idle in transaction, and no worker anywhere rescued.
-- * A poison pill no longer fails its neighbours: a job whose worker was lost, with its
--   attempts spent, while other jobs ran beside it goes back once more, to run alone
--   (run_alone), instead of failing; only a loss while it ran alone fails it. queueing_claim_v2 hands such a job only to a
--   worker that runs nothing else, and then nothing else to that worker.
--
-- Compatibility (docs/design.md): the functions the previous release (schema 5) calls,
-- queueing_claim_v1, queueing_finish_v2 and queueing_rescue_v1, stay for its workers that
-- are still running during a rolling deploy; the next migration may drop them. Those
-- replaced before 0005 are dropped here.

DROP FUNCTION queueing_finish_v1(bigint, bigint[], integer[], text[], jsonb[], jsonb[], timestamptz[]);
DROP FUNCTION queueing_cancel_v1(bigint);
DROP FUNCTION queueing_retry_v1(bigint);

CREATE TYPE queueing_outcome_v1 AS ENUM ('succeeded', 'failed', 'retry', 'cancelled', 'interrupted');

ALTER TABLE procrastinate_jobs ADD COLUMN run_alone boolean NOT NULL DEFAULT false;

-- The few jobs waiting to run alone, found in one probe by an idle worker's claim.
CREATE INDEX queueing_jobs_run_alone_idx ON procrastinate_jobs (priority DESC, id)
    WHERE status = 'todo' AND run_alone;

-- Claim as queueing_claim_v1, plus: a worker that runs nothing (p_idle) first takes one
-- job waiting to run alone, and then only that job; busy workers never take one.
CREATE FUNCTION queueing_claim_v2(
    p_queues    character varying[],
    p_worker_id bigint,
    p_limit     integer,
    p_idle      boolean
)
    RETURNS TABLE (id bigint, task_name character varying, queue_name character varying,
                   args jsonb, attempts integer, max_attempts integer,
                   tenant_id text, user_id text, run_alone boolean)
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
                  j.tenant_id, j.user_id, j.run_alone;
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
              j.tenant_id, j.user_id, j.run_alone;
END;
$$;

-- Finish, as queueing_finish_v2, with the outcome kinds typed: every kind has its own
-- branch and there is no ELSE (an unknown kind never gets this far: the cast refuses it).
CREATE FUNCTION queueing_finish_v3(
    p_worker_id bigint,
    p_ids       bigint[],
    p_attempts  integer[],
    p_outcomes  queueing_outcome_v1[],
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
                    WHEN j.abort_requested THEN 'aborted'
                    WHEN o.outcome = 'cancelled' THEN 'aborted'
                    WHEN o.outcome = 'succeeded' THEN 'succeeded'
                    WHEN o.outcome = 'failed' THEN 'failed'
                    WHEN o.outcome = 'retry' THEN 'todo'
                    WHEN o.outcome = 'interrupted' THEN 'todo'
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
               -- An attempt cut short by a worker shutdown is not the job's fault.
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

-- Rescue, as queueing_rescue_v1, in one statement that takes the maintenance lock itself
-- (the same lock as the previous release's client-side try_maintenance_lock, so old and
-- new workers still take turns). Returns no rows when another worker holds it.
-- A job whose attempts are spent fails only if it ran alone (claimed to run alone, or the
-- only job of its worker); otherwise it may have died of a neighbour (a poison pill kills
-- the whole process), so it goes back once more with run_alone set and this attempt given
-- back: that run decides.
CREATE FUNCTION queueing_rescue_v2(p_stalled_after interval, p_limit integer)
    RETURNS TABLE (id bigint, status text)
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
