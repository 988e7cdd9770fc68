-- 0012: lighter status changes. What a claim and a finish write per job, cut to what the
-- guarantees need (measured: docs/benchmarks.md, "What 0012 changed").
--
-- 1. queueing_finish_v4: one UPDATE ... FROM unnest(outcomes). queueing_finish_v3 read
--    the jobs FOR UPDATE in one CTE and updated them from it in the next; an UPDATE that
--    joins a CTE carries each of its rows along as a whole-row value (for the recheck of
--    a concurrently updated row), and building those took a tenth of the server's CPU in
--    a drain. The status an outcome leads to is one inlined function,
--    queueing_outcome_status_v1, used by every column that depends on it.
-- 2. Job-change hints once per statement: queueing_jobs_changed_v2 carries the ids of
--    the statement's changed jobs, comma-separated (at most 350 per notification), in
--    place of one queueing_job_changed_v1 notification per row. A claim or finish of 100
--    jobs sends one notification, not 100.
-- 3. Indexes a status change no longer writes: each claim and finish inserted an entry
--    in every index whose predicate the new row matched (no update here can be HOT: the
--    status is in the partial indexes' predicates).
--    - procrastinate_jobs_queue_name_idx_v1 (every job): dropped. The claims read their
--      queue through the ready/due indexes (0008, 0009), retention through
--      queueing_jobs_finished_idx.
--    - queueing_jobs_tenant_user_id_idx: only jobs with a tenant. Every reader of it
--      filters on tenant_id = ..., which implies tenant_id IS NOT NULL.
--    - procrastinate's lock indexes: only jobs with a lock. A unique index never
--      compares NULLs, and procrastinate reads the other by lock = ...
-- 4. queueing_attempts.job_id: no foreign key. Its check ran a query per attempt row
--    inserted, for rows that queueing's own functions insert beside the update of that
--    job's row (it exists, and they hold its lock). The foreign key's ON DELETE CASCADE
--    becomes a statement trigger: deleting jobs deletes their attempts in the same
--    statement, and TRUNCATE of the jobs empties the attempts.
--
-- Release 11's calls stay (tests/test_schema.py RELEASE_CALLS): queueing_finish_v3 is
-- kept, and works on the new indexes and triggers. Its clients listen on the v1 channel,
-- which falls silent: their waits see changes at their next poll instead.

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
    LANGUAGE sql
AS $$
    WITH updated AS (
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
                               THEN j.attempts - 1 ELSE j.attempts END
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
    SELECT u.id, queueing_status_name_v1(u.status) FROM updated AS u
$$;

-- 2. Hints once per statement.
CREATE FUNCTION queueing_notify_jobs_changed_v2() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    _ids text;
BEGIN
    -- 350 ids of at most 20 characters each stay under NOTIFY's 8,000-byte payload.
    FOR _ids IN
        SELECT string_agg(c.id::text, ',' ORDER BY c.id)
          FROM (SELECT n.id, (row_number() OVER (ORDER BY n.id) - 1) / 350 AS chunk
                  FROM changed_new AS n
                  JOIN changed_old AS o ON o.id = n.id
                 WHERE o.status IS DISTINCT FROM n.status
                    OR o.progress IS DISTINCT FROM n.progress
                    OR o.progress_detail IS DISTINCT FROM n.progress_detail) AS c
         GROUP BY c.chunk
    LOOP
        PERFORM pg_notify('queueing_jobs_changed_v2', _ids);
    END LOOP;
    RETURN NULL;
END;
$$;

DROP TRIGGER queueing_notify_job_changed_v1 ON procrastinate_jobs;
DROP FUNCTION queueing_notify_job_changed_v1();
CREATE TRIGGER queueing_notify_jobs_changed_v2
    AFTER UPDATE ON procrastinate_jobs
    REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new
    FOR EACH STATEMENT EXECUTE FUNCTION queueing_notify_jobs_changed_v2();

-- 3. Indexes.
DROP INDEX procrastinate_jobs_queue_name_idx_v1;
DROP INDEX queueing_jobs_tenant_user_id_idx;
CREATE INDEX queueing_jobs_tenant_user_id_v2_idx
    ON procrastinate_jobs (tenant_id, user_id, id DESC) WHERE tenant_id IS NOT NULL;
DROP INDEX procrastinate_jobs_id_lock_idx_v1;
CREATE INDEX queueing_jobs_id_lock_idx
    ON procrastinate_jobs (id, lock)
    WHERE status IN ('todo', 'doing') AND lock IS NOT NULL;
DROP INDEX procrastinate_jobs_lock_idx_v1;
CREATE UNIQUE INDEX queueing_jobs_lock_idx
    ON procrastinate_jobs (lock) WHERE status = 'doing' AND lock IS NOT NULL;

-- 4. Attempts go with their job.
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

-- Called by no release since 0009.
DROP FUNCTION queueing_claim_v4(character varying[], bigint, integer, boolean);
