-- Migration 0010: operators as actors, and where each worker runs.
--
-- * queueing_cancel_v3: queueing_cancel_v2's rules plus the actor kind 'operator' (a
--   named person acting with the system's rights: the dashboard's signed-in operator),
--   recorded as cancelled_by = 'operator:<name>'. queueing_cancel_v2 stays: release 9
--   calls it, and so does queueing_api_cancel_v1 (end users are never operators).
--   Retry and run-now record no actor, so they keep their functions: the library calls
--   queueing_retry_v2 with an operator's rights ('system').
-- * procrastinate_workers gains host, pid and started_at, all nullable: rows registered
--   before this migration, and by procrastinate's own procrastinate_register_worker_v1
--   (kept: a procrastinate worker may share the database), have no host or pid. A row
--   registered from now on gets started_at = its insert time; older rows stay NULL
--   (their start is unknown), which is why the default is set after the column is added.
-- * queueing_register_worker_v1(host, pid): the worker's registration, with its host
--   and process id (the dashboard's /workers page shows them).

-- Cancel on behalf of an actor: 'system' or 'operator' p_operator (anything), 'admin'
-- of p_tenant (any job of that tenant) or 'user' p_user of p_tenant (their own jobs). A
-- job of another tenant is reported as not found, so that its existence is not revealed.
-- Returns what happened (cancelled, stop_requested, already_requested, not_found,
-- not_allowed, terminal) and, unless not_found/not_allowed, the record as it is after
-- this call, read in the same transaction.
CREATE FUNCTION queueing_cancel_v3(
    p_job_id bigint, p_actor text, p_tenant text, p_user text, p_operator text
)
    RETURNS TABLE (outcome text, job text)
    LANGUAGE plpgsql
AS $$
DECLARE
    _job procrastinate_jobs;
    _by text;
BEGIN
    IF p_actor NOT IN ('system', 'operator', 'admin', 'user') THEN
        RAISE EXCEPTION 'unknown actor kind %', p_actor;
    END IF;
    IF p_actor = 'operator' AND COALESCE(p_operator, '') = '' THEN
        RAISE EXCEPTION 'an operator actor needs a name';
    END IF;
    SELECT * INTO _job FROM procrastinate_jobs WHERE id = p_job_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::text;
        RETURN;
    END IF;
    IF p_actor IN ('admin', 'user') AND _job.tenant_id IS DISTINCT FROM p_tenant THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::text;
        RETURN;
    END IF;
    IF p_actor = 'user' AND _job.user_id IS DISTINCT FROM p_user THEN
        RETURN QUERY SELECT 'not_allowed'::text, NULL::text;
        RETURN;
    END IF;
    IF _job.status NOT IN ('todo', 'doing') THEN
        RETURN QUERY SELECT 'terminal'::text, queueing_job_json_v1(p_job_id);
        RETURN;
    END IF;
    _by := CASE p_actor
               WHEN 'system' THEN 'system'
               WHEN 'operator' THEN 'operator:' || p_operator
               WHEN 'admin' THEN 'admin:' || p_tenant
               ELSE 'user:' || p_user
           END;
    IF _job.status = 'todo' THEN
        UPDATE procrastinate_jobs
           SET status = 'cancelled', cancelled_by = _by, cancelled_at = clock_timestamp()
         WHERE id = p_job_id;
        RETURN QUERY SELECT 'cancelled'::text, queueing_job_json_v1(p_job_id);
        RETURN;
    END IF;
    IF _job.abort_requested THEN
        RETURN QUERY SELECT 'already_requested'::text, queueing_job_json_v1(p_job_id);
        RETURN;
    END IF;
    -- procrastinate's trigger sends "abort_job_requested" to the workers.
    UPDATE procrastinate_jobs
       SET abort_requested = true, cancelled_by = _by, cancelled_at = clock_timestamp()
     WHERE id = p_job_id;
    RETURN QUERY SELECT 'stop_requested'::text, queueing_job_json_v1(p_job_id);
END;
$$;

ALTER TABLE procrastinate_workers
    ADD COLUMN host text,
    ADD COLUMN pid integer,
    ADD COLUMN started_at timestamptz;
ALTER TABLE procrastinate_workers ALTER COLUMN started_at SET DEFAULT now();

-- Register a worker: its id. host and pid say where it runs (shown to operators only).
CREATE FUNCTION queueing_register_worker_v1(p_host text, p_pid integer)
    RETURNS TABLE (worker_id bigint)
    LANGUAGE sql
AS $$
    INSERT INTO procrastinate_workers (host, pid) VALUES (p_host, p_pid)
    RETURNING procrastinate_workers.id
$$;
