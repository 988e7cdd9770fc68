-- 0015: job-change hints only while someone waits for them.
--
-- Every statement that changes jobs (each claim and each finish among them) ended with a
-- NOTIFY on queueing_jobs_changed_v2, for Queue.wait and the dashboard. PostgreSQL 15
-- wakes every session of the database that LISTENs on any channel at each commit that
-- notified, and takes a lock that orders all notifying commits: every worker's listener
-- (which listens only for new jobs) was woken by every claim and finish of every other
-- worker. Measured with `python -m bench hints-ab` (the trigger off on the B side):
-- 8 workers drained 1.21x faster without these hints, 32 small ones ~1.4x.
--
-- Now a session that waits for job changes says so first: queueing_listen_job_changes_v1
-- takes a shared session-level advisory lock on each of 16 slots, then LISTENs. The
-- trigger notifies only if one of them is held by another session (its exclusive try on
-- its own slot fails), or this session listens, or the database was upgraded (below).
--
-- No change is missed by a session that registered and then read the job: a statement
-- whose trigger found no one registered holds its slot's exclusive lock until its
-- transaction ends, and registering waits for that, so what the session reads after
-- registering includes the change; a statement after the registration notifies. A
-- registration that would wait longer than p_wait (a long transaction changed jobs and
-- is still open) gives up and returns false: the caller then polls.
--
-- Release 14's clients LISTEN without registering. A database upgraded from schema 14
-- (14 applied by an earlier transaction than this one) keeps the trigger that notifies
-- every change (v2) until all its clients run this release; then swap it for v3 as
-- docs/design.md shows (the next migration swaps it anyway). A fresh database gets v3.
-- (The switch is the trigger itself, not a setting it reads: a table the trigger read
-- would have to be readable by every role that changes jobs, the API role among them.)

CREATE FUNCTION queueing_listen_job_changes_v1(p_wait interval)
    RETURNS boolean
    LANGUAGE plpgsql
AS $$
BEGIN
    -- 0: wait as long as it takes (NULL).
    PERFORM set_config('lock_timeout',
                       COALESCE(GREATEST(ceil(extract(epoch FROM p_wait) * 1000), 1), 0)::text,
                       true);
    BEGIN
        PERFORM pg_advisory_lock_shared(hashtext('queueing_jobs_changed'), slot)
           FROM generate_series(0, 15) AS slot;
    EXCEPTION WHEN lock_not_available THEN
        -- The slots taken so far stay taken (session locks survive the rollback of this
        -- block) until the session ends: they only make other sessions notify.
        RETURN false;
    END;
    LISTEN queueing_jobs_changed_v2;
    RETURN true;
END;
$$;

CREATE FUNCTION queueing_notify_jobs_changed_v3() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    _ids bigint[];
BEGIN
    -- Held to the commit: a registration waits for it (see above).
    IF pg_try_advisory_xact_lock(hashtext('queueing_jobs_changed'), pg_backend_pid() % 16)
       AND NOT 'queueing_jobs_changed_v2' = ANY (ARRAY(SELECT pg_listening_channels()))
    THEN
        RETURN NULL;  -- no one waits for job changes
    END IF;
    SELECT array_agg(n.id) INTO _ids FROM changed_jobs AS n;
    -- 350 ids of at most 20 characters each stay under NOTIFY's 8,000-byte payload.
    FOR _first IN 1 .. coalesce(cardinality(_ids), 0) BY 350 LOOP
        PERFORM pg_notify('queueing_jobs_changed_v2',
                          array_to_string(_ids[_first:_first + 349], ','));
    END LOOP;
    RETURN NULL;
END;
$$;

-- A fresh database: v3 at once. One upgraded from schema 14, whose version row an earlier
-- transaction wrote: v2 stays until every client runs this release (see above).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM queueing_migrations AS m
                    WHERE m.version = 14 AND age(m.xmin) > 0) THEN
        DROP TRIGGER queueing_notify_jobs_changed_v2 ON procrastinate_jobs;
        CREATE TRIGGER queueing_notify_jobs_changed_v3
            AFTER UPDATE ON procrastinate_jobs
            REFERENCING NEW TABLE AS changed_jobs
            FOR EACH STATEMENT EXECUTE FUNCTION queueing_notify_jobs_changed_v3();
    END IF;
END;
$$;
