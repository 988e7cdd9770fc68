-- 0014: an enqueue that returns what only the server knows, outcomes sent as one JSON
-- document, and a claim and a finish that are not planned again at every call.
--
-- 1. queueing_enqueue_v5.
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
-- 2. queueing_finish_v5: queueing_finish_v4 with the batch's outcomes as one JSON array
--    of objects instead of six parallel arrays. The worker built those arrays' text
--    element by element in Python (psycopg's list dumper, quoting each one): 6 us of the
--    worker's CPU per job, a fifth of all it spends on a no-op job; one JSON text is
--    written by string formatting, the handler's result already being JSON text. It
--    unpacks the document and calls queueing_finish_v4, which does the work (fencing,
--    statuses, attempt history) as before. Not with generic plans, unlike the claim
--    (4.): with them, a 2-minute sustained trial at 8,000 jobs/s had pick-up p99 6.7 s
--    in minute 1 and workers of 79 MiB, against 111 ms and 52 MiB without (likely:
--    queueing_finish_v4 leaves sequential scans on, and a generic plan made by a
--    worker's first finish, into a near-empty table, is kept until a vacuum).
-- 3. queueing_attempts: its primary key is (job_id, id), the index every read of a job's
--    history already used, in place of (id) alone, which nothing reads by. Each finish
--    writes one index entry per attempt instead of two.
--
-- 4. queueing_claim_v8: queueing_claim_v7 run with plan_cache_mode = force_generic_plan.
--    PL/pgSQL plans each statement with the call's values until a generic plan looks no
--    dearer than those, and with LIMIT p_limit and the queue filters it never did: every
--    claim planned each of its statements again. Generic plans (planned once per
--    session) are the same index walks, since the claim's functions turn sequential and
--    bitmap scans off: 13.3 -> 11.3 us of server CPU per claimed job (bench.statement_cost's
--    rounds, A/B by ALTER FUNCTION on scratch databases).
--    tests/test_claim_plans.py bounds the buffers of these plans with large tables.
-- 5. queueing_jobs_finished_v2_idx: queueing_jobs_finished_idx with id as its last
--    column. queueing_prune_v2 reads the finished jobs of a queue in (finished_at, id)
--    order, for the keep and for the batch; the old index gave finished_at's order only,
--    so with statistics taken while the table was small each batch was planned as a
--    sort of every finished job past the cut, then the LIMIT: O(backlog) per batch.
--    A pruner that fell behind once never caught up: a 10-minute run at 8,000 jobs/s
--    ended with 3.6 million live jobs and pick-up p99 at 9 s (auto_explain: 216-250 ms
--    per batch of 500, a Sort over the index scan). The index's order is the read's
--    now, and a batch reads its batch.
--
-- Release 13's functions stay: queueing_enqueue_v3 (still called, for arguments that do
-- not read back as sent), queueing_enqueue_v4 (still called, for dedupe keys) and
-- queueing_finish_v4 (called by v5).

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

-- 2. Outcomes as JSON: [{"id": 1, "attempt": 1, "outcome": "succeeded", "result": ...,
--    "error": ..., "retry_at": "..."}, ...]. "result" is the handler's result (a JSON
--    null for a handler that returned nothing, as v4 received it); "error", "retry_at":
--    absent or null when there is none. An outcome the type queueing_outcome_v1 does not
--    name is refused, as v4's cast refused it.
CREATE FUNCTION queueing_finish_v5(p_worker_id bigint, p_outcomes json)
    RETURNS TABLE(id bigint, status text)
    LANGUAGE plpgsql
AS $$
DECLARE
    _ids bigint[];
    _attempts integer[];
    _outcomes queueing_outcome_v1[];
    _results jsonb[];
    _errors jsonb[];
    _retry_at timestamptz[];
BEGIN
    -- One aggregation: the six arrays are built row by row together, so they line up
    -- (the order of the rows themselves does not matter to v4).
    SELECT array_agg(o.id), array_agg(o.attempt), array_agg(o.outcome),
           -- A JSON null comes out of json_to_recordset as SQL NULL: a success stores
           -- the JSON null it returned, as v4 was sent it.
           array_agg(CASE WHEN o.outcome = 'succeeded' THEN COALESCE(o.result, 'null')
                          ELSE o.result END),
           array_agg(o.error), array_agg(o.retry_at)
      INTO _ids, _attempts, _outcomes, _results, _errors, _retry_at
      FROM json_to_recordset(p_outcomes) AS o(id bigint, attempt integer,
                                              outcome queueing_outcome_v1, result jsonb,
                                              error jsonb, retry_at timestamptz);
    RETURN QUERY SELECT * FROM queueing_finish_v4(p_worker_id, _ids, _attempts, _outcomes,
                                                  _results, _errors, _retry_at);
END;
$$;

-- 3. One index on the attempt history. (id is unique on its own, so (job_id, id) is.)
CREATE UNIQUE INDEX queueing_attempts_job_id_key ON queueing_attempts (job_id, id);
ALTER TABLE queueing_attempts DROP CONSTRAINT queueing_attempts_pkey;
ALTER TABLE queueing_attempts
    ADD CONSTRAINT queueing_attempts_pkey PRIMARY KEY USING INDEX queueing_attempts_job_id_key;
DROP INDEX queueing_attempts_job_idx;

-- 4. The claim, planned once per session.
CREATE FUNCTION queueing_claim_v8(
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
    -- In force while queueing_claim_v7 and queueing_claim_v6 run inside this call: their
    -- statements get the generic plan.
    SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY SELECT * FROM queueing_claim_v7(p_queues, p_worker_id, p_limit, p_idle);
END;
$$;

-- 5. The finished jobs of a queue in the order retention reads them.
CREATE INDEX queueing_jobs_finished_v2_idx
    ON procrastinate_jobs (queue_name, status, finished_at, id) WHERE finished_at IS NOT NULL;
DROP INDEX queueing_jobs_finished_idx;
