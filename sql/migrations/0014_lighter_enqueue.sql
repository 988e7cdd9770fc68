-- 0014: an enqueue that returns what only the server knows.
--
-- queueing_enqueue_v3 inserted the jobs, then read each one back through the
-- queueing_jobs view and returned it as JSON text, which the client parsed again: of
-- ~25 us of server time per job in batches of 5,000, the read-back and its JSON were
-- more than half (an insert returning only ids: 8-14 us). Of a new job's record, the
-- server alone decides the id and the creation time; every other field is what the
-- client sent or a column default (pending, no attempt, no progress, no worker).
--
-- queueing_enqueue_v5 returns the ids, in input order, and one creation time: it sets
-- created_at and updated_at to one clock reading for the whole statement, where the
-- columns' default (clock_timestamp()) read the clock once per row and column. The
-- client builds each record from its request and these (queueing.ops.enqueue); a job
-- whose arguments would not read back from jsonb exactly as sent (a tuple, a float
-- written with an exponent, a subclass of a JSON type) is still enqueued through v3,
-- which reads them back.
--
-- Release 13's enqueue functions stay (v3, and v4 for jobs with a dedupe key, which
-- this release still calls).

CREATE FUNCTION queueing_enqueue_v5(p_jobs json)
    RETURNS TABLE (ids bigint[], created_at timestamptz)
    -- plpgsql, not sql: PostgreSQL 15 plans a sql function's statement on every call.
    LANGUAGE plpgsql
    SET jit = off
AS $$
DECLARE
    _now timestamptz := clock_timestamp();
BEGIN
    RETURN QUERY
    WITH inserted AS (
        INSERT INTO procrastinate_jobs
               (queue_name, task_name, priority, args, scheduled_at, tenant_id, user_id,
                max_attempts, created_at, updated_at)
        SELECT j.queue_name, j.task_name, j.priority, j.args, j.scheduled_at, j.tenant_id,
               j.user_id, j.max_attempts, _now, _now
          FROM ROWS FROM (
                   json_to_recordset(p_jobs) AS (queue_name character varying,
                                                 task_name character varying,
                                                 priority integer, args jsonb,
                                                 scheduled_at timestamptz, tenant_id text,
                                                 user_id text, max_attempts integer)
               ) WITH ORDINALITY AS j(queue_name, task_name, priority, args, scheduled_at,
                                      tenant_id, user_id, max_attempts, n)
         -- Ids are drawn in this order, so the k-th smallest id is the k-th job's.
         ORDER BY j.n
        RETURNING id
    )
    SELECT COALESCE(array_agg(i.id ORDER BY i.id), '{}'), _now FROM inserted AS i;
END;
$$;
