-- 0013: lighter claims, a worker's exit that costs what it was running, and pruning that
-- costs what it deletes.
--
-- 1. procrastinate_jobs.worker_id: no foreign key. Its check ran a query (SELECT ... FOR
--    KEY SHARE of the worker's row) for every job a claim took: a fifth of a claim's
--    server CPU (bench.statement_cost, batches of 100: 13.0 -> 10.0 us per job). And its
--    ON DELETE SET NULL updated every job the worker ever ran when its row went (a
--    worker's clean exit, or the rescue forgetting it): with no index of all jobs by
--    worker, a scan of the whole table and a new version of each finished row, with its
--    job-change hints (measured: 1.2 s at the exit of two workers that had run 100,000
--    jobs). In their place:
--    - queueing_claim_v7: queueing_claim_v6 that first locks the worker's row (FOR KEY
--      SHARE, as the check did), once per claim, and raises the same error
--      (foreign_key_violation) when the row is gone: the worker re-registers, as before.
--    - queueing_release_jobs_v1, a statement trigger on procrastinate_workers: deleting
--      workers clears worker_id on their *active* jobs only (the rescue's "no worker"),
--      through queueing_jobs_doing_worker_idx. A finished job keeps the id of the worker
--      that ran it, which may no longer be registered.
--    - queueing_rescue_v4: queueing_rescue_v3 that also takes active jobs whose worker
--      row does not exist, once they started longer ago than p_stalled_after: a release-12
--      worker (queueing_claim_v6 does not look) may claim after its row went, during a
--      rolling deploy, and still runs and finishes those jobs under its old id unless it
--      has died. (Release 12's rescue, queueing_rescue_v3, does not see them: they wait
--      for a release-13 worker's rescue.)
-- 2. Indexes a claim no longer writes:
--    - procrastinate_jobs_lock_idx_v1 (unique, every doing job, its lock NULL for all
--      but procrastinate's locked jobs): only jobs with a lock, as 0012 did for the
--      other lock indexes. Its uniqueness is unchanged (NULLs never conflict).
--    - idx_procrastinate_jobs_worker_not_null becomes queueing_jobs_doing_worker_idx:
--      every doing job by worker, NULL included. The rescue reads it (worker_id = ANY
--      (dead) OR worker_id IS NULL), the trigger above, and a queue's max_active count
--      of its doing jobs, which read procrastinate_jobs_lock_idx_v1 until now.
--    A claim wrote 3 index entries per job (primary key, lock, worker); now 2.
-- 3. and 4. below: the claim (the check, then queueing_claim_v6) and the rescue of 1.
-- 5. Retention: queueing_prune_v2, whose statement reads the batch it deletes and the
--    jobs it keeps, not every finished job (its comment below).


-- 1. No foreign key from jobs to workers.
ALTER TABLE procrastinate_jobs DROP CONSTRAINT procrastinate_jobs_worker_id_fkey;

CREATE FUNCTION queueing_release_jobs_v1() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    UPDATE procrastinate_jobs AS j
       SET worker_id = NULL
      FROM deleted_workers AS d
     WHERE j.worker_id = d.id AND j.status = 'doing';
    RETURN NULL;
END;
$$;

CREATE TRIGGER queueing_release_jobs_v1
    AFTER DELETE ON procrastinate_workers
    REFERENCING OLD TABLE AS deleted_workers
    FOR EACH STATEMENT EXECUTE FUNCTION queueing_release_jobs_v1();

-- 2. Indexes.
CREATE INDEX queueing_jobs_doing_worker_idx
    ON procrastinate_jobs (worker_id) WHERE status = 'doing';
DROP INDEX idx_procrastinate_jobs_worker_not_null;
-- Same name as procrastinate's, which its own schema (and a reader of it) knows.
DROP INDEX procrastinate_jobs_lock_idx_v1;
CREATE UNIQUE INDEX procrastinate_jobs_lock_idx_v1
    ON procrastinate_jobs (lock) WHERE status = 'doing' AND lock IS NOT NULL;

-- 3. The claim: the worker check of 1, then queueing_claim_v6 itself (its paths, its
--    settings), which is kept for release 12 anyway.
CREATE FUNCTION queueing_claim_v7(
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
AS $$
BEGIN
    -- The worker's row, locked until this claim commits, as the foreign key's check did
    -- for each claimed row: a worker that was rescued or forgotten claims nothing, and its
    -- row cannot go between this check and the commit.
    PERFORM FROM procrastinate_workers AS w WHERE w.id = p_worker_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE foreign_key_violation
              USING MESSAGE = format('worker %s is not registered', p_worker_id);
    END IF;
    RETURN QUERY SELECT * FROM queueing_claim_v6(p_queues, p_worker_id, p_limit, p_idle);
END;
$$;

-- 4. The rescue: queueing_rescue_v3 and the jobs of workers with no row.
CREATE FUNCTION queueing_rescue_v4(p_stalled_after interval, p_limit integer)
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
         WHERE j.status = 'doing'
           AND (j.worker_id = ANY(_dead) OR j.worker_id IS NULL
                -- No foreign key since 0013: a claim by a release-12 worker whose row
                -- was gone (queueing_claim_v6 does not look) left a dangling id. That
                -- worker may still be running it (its heartbeat notices within seconds,
                -- and its finisher still writes under the old id): taken only once it
                -- started longer ago than a stalled worker's heartbeat.
                OR (NOT EXISTS (SELECT FROM procrastinate_workers AS w
                                 WHERE w.id = j.worker_id)
                    AND j.started_at < clock_timestamp() - p_stalled_after))
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

-- 5. Retention: queueing_prune_v2, whose statement costs O(batch), not O(finished jobs).
--    queueing_prune_v1 ranked every completed job of the table (row_number() over the
--    queue's completed jobs, newest first) for each batch of 500 it deleted, and a
--    sort of the whole set besides: at a few thousand jobs a second each round had
--    hundreds of thousands of jobs to prune, and every batch of it ranked them all again,
--    so the pruner fell behind and the table kept growing (docs/benchmarks.md, run C's
--    sustained load). v2 deletes the same jobs, queue by queue (the queues that hold
--    finished jobs, by a skip scan of queueing_jobs_finished_idx): the completed jobs
--    older than the age, or older than the newest p_completed_keep, both a prefix of the
--    queue's completed jobs oldest first, read from the oldest on that index; then the
--    failed, cancelled and aborted ones older than p_failed_age. At most p_limit in all.
--    The age cut-offs are computed once, so that each bounds its index scan (compared
--    with clock_timestamp() row by row, they were filters, and a round's last call,
--    which finds fewer than p_limit, read every job the policy keeps).
--    tests/test_retention.py compares the jobs v1 and v2 leave over a grid of policies.
CREATE FUNCTION queueing_prune_v2(p_queue character varying, p_completed_age interval,
                                  p_completed_keep integer, p_failed_age interval,
                                  p_limit integer)
    RETURNS integer
    LANGUAGE plpgsql
    SET enable_seqscan = off
    SET enable_bitmapscan = off
    SET jit = off
AS $$
DECLARE
    _queue     character varying;
    _cut_at    timestamptz;
    _cut_id    bigint;
    -- Computed once, so that each is a bound of the index scan, not a filter of it.
    _age_cut   timestamptz := clock_timestamp() - p_completed_age;
    _failed_cut timestamptz := clock_timestamp() - p_failed_age;
    -- As v1 reads them: no limit is no limit, and a keep below 0 keeps none.
    _limit     integer := COALESCE(p_limit, 2147483647);
    _keep      integer := CASE WHEN p_completed_keep IS NOT NULL
                                THEN GREATEST(p_completed_keep, 0) END;
    _n         integer;
    _deleted   integer := 0;
BEGIN
    FOR _queue IN
        WITH RECURSIVE q AS (
            (SELECT j.queue_name FROM procrastinate_jobs AS j
              WHERE j.finished_at IS NOT NULL ORDER BY j.queue_name LIMIT 1)
            UNION ALL
            SELECT (SELECT j.queue_name FROM procrastinate_jobs AS j
                     WHERE j.finished_at IS NOT NULL AND j.queue_name > q.queue_name
                     ORDER BY j.queue_name LIMIT 1)
              FROM q WHERE q.queue_name IS NOT NULL
        )
        SELECT p_queue WHERE p_queue IS NOT NULL
        UNION ALL
        SELECT q.queue_name FROM q WHERE p_queue IS NULL AND q.queue_name IS NOT NULL
    LOOP
        EXIT WHEN _deleted >= _limit;
        -- The newest completed job past the keep: it and every older one go.
        _cut_at := NULL;
        _cut_id := NULL;
        IF _keep IS NOT NULL THEN
            SELECT j.finished_at, j.id INTO _cut_at, _cut_id
              FROM procrastinate_jobs AS j
             WHERE j.queue_name = _queue AND j.status = 'succeeded'
               AND j.finished_at IS NOT NULL
             ORDER BY j.finished_at DESC, j.id DESC
            OFFSET _keep LIMIT 1;
        END IF;
        -- Both rules doom a prefix of the queue's completed jobs, oldest first, so
        -- together they doom the longer one: those finished before _age_cut, or those up
        -- to the keep's cut (inclusive), whichever reaches further. Each is read from the
        -- oldest on queueing_jobs_finished_idx, bounded by its cut.
        IF _cut_at IS NOT NULL AND (_age_cut IS NULL OR _age_cut <= _cut_at) THEN
            WITH batch AS (
                SELECT j.id
                  FROM procrastinate_jobs AS j
                 WHERE j.queue_name = _queue AND j.status = 'succeeded'
                   AND j.finished_at <= _cut_at
                   AND (j.finished_at, j.id) <= (_cut_at, _cut_id)
                 ORDER BY j.finished_at, j.id
                 LIMIT _limit - _deleted
                   FOR UPDATE SKIP LOCKED
            ), gone AS (
                DELETE FROM procrastinate_jobs AS j USING batch AS b WHERE j.id = b.id
                RETURNING j.id
            )
            SELECT count(*) INTO _n FROM gone;
            _deleted := _deleted + _n;
        ELSIF _age_cut IS NOT NULL THEN
            WITH batch AS (
                SELECT j.id
                  FROM procrastinate_jobs AS j
                 WHERE j.queue_name = _queue AND j.status = 'succeeded'
                   AND j.finished_at < _age_cut
                 ORDER BY j.finished_at, j.id
                 LIMIT _limit - _deleted
                   FOR UPDATE SKIP LOCKED
            ), gone AS (
                DELETE FROM procrastinate_jobs AS j USING batch AS b WHERE j.id = b.id
                RETURNING j.id
            )
            SELECT count(*) INTO _n FROM gone;
            _deleted := _deleted + _n;
        END IF;
        IF _failed_cut IS NOT NULL AND _deleted < _limit THEN
            WITH batch AS (
                SELECT j.id
                  FROM procrastinate_jobs AS j
                 WHERE j.queue_name = _queue
                   AND j.status IN ('failed', 'cancelled', 'aborted')
                   AND j.finished_at < _failed_cut
                 LIMIT _limit - _deleted
                   FOR UPDATE SKIP LOCKED
            ), gone AS (
                DELETE FROM procrastinate_jobs AS j USING batch AS b WHERE j.id = b.id
                RETURNING j.id
            )
            SELECT count(*) INTO _n FROM gone;
            _deleted := _deleted + _n;
        END IF;
    END LOOP;
    RETURN _deleted;
END;
$$;
