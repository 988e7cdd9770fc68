-- 0008: a claim whose cost does not grow with the table.
--
-- queueing_claim_v3 walked one index, (priority DESC, id) over every pending job, and
-- filtered as it went. Jobs it could not take were walked on every claim: 100,000 jobs
-- delayed until tomorrow at a higher priority than the due ones (they sort first), or
-- 100,000 pending jobs of a queue this worker does not serve. queueing_claim_v4 reads
-- each kind of claimable job from an index that holds only that kind, in claim order, so
-- every branch stops after p_limit rows:
--
-- * jobs due at once (scheduled_at IS NULL), all queues: queueing_jobs_ready_idx, walked
--   in (priority DESC, id) order;
-- * the same for a worker of named queues: queueing_jobs_ready_queue_idx, walked per
--   queue (one index descent per queue; a queue the worker does not serve is never read);
-- * jobs with a scheduled time that has come: queueing_jobs_due_idx (scheduled_at), from
--   the earliest; a job due tomorrow ends the range scan, it is not filtered out row by
--   row.
--
-- The branches' rows are merged in (priority DESC, id) order and the first p_limit are
-- claimed. Each branch locks what it reads (FOR UPDATE SKIP LOCKED), so two claimers walk
-- past each other's rows instead of colliding on the same ones; the rows a branch locked
-- beyond the first p_limit are released when the claim's statement commits, a moment
-- later. Claim order: the highest priority first, then the oldest; a scheduled job joins
-- that order when it falls due, and when more than p_limit scheduled jobs are due at once
-- the longest-due are the ones considered.
--
-- Compatibility (docs/design.md): queueing_claim_v3, which the previous release (schema
-- 7) calls, stays. The functions release 6 called and release 7 no longer calls are
-- dropped: queueing_claim_v1, _v2, queueing_rescue_v1, _v2 and queueing_finish_v2.

CREATE INDEX queueing_jobs_ready_idx ON procrastinate_jobs (priority DESC, id)
    WHERE status = 'todo' AND scheduled_at IS NULL AND NOT run_alone;

CREATE INDEX queueing_jobs_ready_queue_idx ON procrastinate_jobs (queue_name, priority DESC, id)
    WHERE status = 'todo' AND scheduled_at IS NULL AND NOT run_alone;

CREATE FUNCTION queueing_claim_v4(
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
    -- Queue tables' statistics are always stale: with them the planner may choose a
    -- bitmap scan of every pending job and a sort. Each branch must walk its index in
    -- order and stop at its LIMIT.
    SET enable_seqscan = off
    SET enable_bitmapscan = off
AS $$
DECLARE
    _ids bigint[];
BEGIN
    IF p_idle THEN
        -- The worker runs nothing: it may take a job that must run alone (0006). Rare,
        -- so one index of its own.
        SELECT array_agg(j.id) INTO _ids
          FROM (SELECT j.id
                  FROM procrastinate_jobs AS j
                 WHERE j.status = 'todo' AND j.run_alone
                   AND (p_queues IS NULL OR j.queue_name = ANY(p_queues))
                   AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
                 ORDER BY j.priority DESC, j.id ASC
                 LIMIT 1
                   FOR UPDATE SKIP LOCKED) AS j;
    END IF;
    IF _ids IS NULL AND p_queues IS NULL THEN
        WITH ready AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND NOT j.run_alone
             ORDER BY j.priority DESC, j.id ASC
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        ), due AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
               AND j.scheduled_at <= now() AND NOT j.run_alone
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
                      AND j.queue_name = q.name
                    ORDER BY j.priority DESC, j.id ASC
                    LIMIT p_limit
                      FOR UPDATE SKIP LOCKED) AS r
        ), due AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
               AND j.scheduled_at <= now() AND NOT j.run_alone
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
              j.trace_context;
END;
$$;

DROP FUNCTION queueing_claim_v1(character varying[], bigint, integer);
DROP FUNCTION queueing_claim_v2(character varying[], bigint, integer, boolean);
DROP FUNCTION queueing_rescue_v1(interval, integer);
DROP FUNCTION queueing_rescue_v2(interval, integer);
DROP FUNCTION queueing_finish_v2(bigint, bigint[], integer[], text[], jsonb[], jsonb[],
                                 timestamp with time zone[]);
