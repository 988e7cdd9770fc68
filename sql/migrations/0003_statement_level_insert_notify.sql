-- 0003: one "job_inserted" hint per queue per statement, not two per row.
--
-- procrastinate's AFTER INSERT trigger sends two notifications for every row (its
-- queue's channel and the any-queue channel), so enqueueing 1,000 jobs in one
-- statement queued 2,000 notifications, and every listening worker woke for each.
-- Workers (ours and procrastinate's own) only use "job_inserted" as a wake-up hint,
-- so one per queue per statement says the same. The payload keeps procrastinate's
-- shape; job_id is the statement's highest id for that queue.
DROP TRIGGER procrastinate_jobs_notify_queue_job_inserted_v1 ON procrastinate_jobs;

CREATE FUNCTION queueing_notify_jobs_inserted_v1()
    RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    _queue character varying;
    _job_id bigint;
    _payload text;
BEGIN
    FOR _queue, _job_id IN
        SELECT queue_name, max(id) FROM inserted WHERE status = 'todo' GROUP BY queue_name
    LOOP
        _payload := json_build_object('type', 'job_inserted', 'job_id', _job_id)::text;
        PERFORM pg_notify('procrastinate_queue_v1#' || _queue, _payload);
        PERFORM pg_notify('procrastinate_any_queue_v1', _payload);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE TRIGGER queueing_notify_jobs_inserted_v1
    AFTER INSERT ON procrastinate_jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION queueing_notify_jobs_inserted_v1();
