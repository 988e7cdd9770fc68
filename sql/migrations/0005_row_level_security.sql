-- 0005: let applications show job records to their end users straight from PostgreSQL
-- (as Supabase-style apps do), guarded by row-level security.
--
-- Roles (cluster-wide, created once, NOLOGIN):
--   queueing_api  runs the API functions below (they are SECURITY DEFINER, owned by it).
--                 It is the only role the tenant policies apply to; it is not the
--                 tables' owner and has no BYPASSRLS, so the policies always bind it.
--   queueing_app  what application roles are made members of: EXECUTE on the API
--                 functions and SELECT on the API view, nothing on any table.
-- The owner of the tables (the role that runs `queueing db migrate`, the workers and
-- the CLI) keeps full access through its own policy: FORCE ROW LEVEL SECURITY makes
-- even the owner go through policies, so a forgotten one fails closed.
--
-- The actor is read from transaction-local settings, set by queueing.rls.set_actor():
--   queueing.actor      'user' or 'admin' (anything else, or unset: no rows)
--   queueing.tenant_id  the actor's tenant (unset: no rows)
--   queueing.user_id    the user, for 'user'
-- A setting set with set_config(..., true) reads back as '' (not NULL) after its
-- transaction ends, so '' counts as unset: NULLIF(..., '') below.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'queueing_api') THEN
        BEGIN
            CREATE ROLE queueing_api NOLOGIN NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by a migration of another database
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'queueing_app') THEN
        BEGIN
            CREATE ROLE queueing_app NOLOGIN NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END;
$$;

-- Nobody but the owner gets anything on the queue's tables by default.
REVOKE ALL ON procrastinate_jobs, procrastinate_workers, procrastinate_periodic_defers,
              procrastinate_events, queueing_attempts, queueing_migrations, queueing_jobs
    FROM PUBLIC;

-- Is this row visible to the actor of the current transaction? Fails closed: no actor,
-- an unknown kind, no tenant, or a job without a tenant all give false.
CREATE FUNCTION queueing_actor_sees_v1(p_tenant_id text, p_user_id text)
    RETURNS boolean
    LANGUAGE sql STABLE
AS $$
    SELECT COALESCE(
        p_tenant_id = NULLIF(current_setting('queueing.tenant_id', true), '')
        AND CASE NULLIF(current_setting('queueing.actor', true), '')
                WHEN 'admin' THEN true
                WHEN 'user' THEN p_user_id = NULLIF(current_setting('queueing.user_id', true), '')
                ELSE false
            END,
        false)
$$;

ALTER TABLE procrastinate_jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE procrastinate_jobs FORCE ROW LEVEL SECURITY;
ALTER TABLE queueing_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE queueing_attempts FORCE ROW LEVEL SECURITY;

-- The owner (workers, CLI, library) sees and changes everything; its name is only
-- known at migration time.
DO $$
DECLARE
    _owner regrole := (SELECT relowner::regrole FROM pg_class
                        WHERE oid = 'procrastinate_jobs'::regclass);
BEGIN
    EXECUTE format('CREATE POLICY queueing_owner_all ON procrastinate_jobs TO %s '
                   'USING (true) WITH CHECK (true)', _owner);
    EXECUTE format('CREATE POLICY queueing_owner_all ON queueing_attempts TO %s '
                   'USING (true) WITH CHECK (true)', _owner);
END;
$$;

-- The API's role: reads the actor's rows, and may cancel them (nothing else).
CREATE POLICY queueing_actor_read ON procrastinate_jobs
    FOR SELECT TO queueing_api
    USING (queueing_actor_sees_v1(tenant_id, user_id));
CREATE POLICY queueing_actor_cancel ON procrastinate_jobs
    FOR UPDATE TO queueing_api
    USING (queueing_actor_sees_v1(tenant_id, user_id))
    WITH CHECK (queueing_actor_sees_v1(tenant_id, user_id));
GRANT SELECT ON procrastinate_jobs, queueing_jobs TO queueing_api;
GRANT UPDATE (status, abort_requested, cancelled_by, cancelled_at)
    ON procrastinate_jobs TO queueing_api;
-- procrastinate's abort trigger records an event row when a running job is cancelled.
GRANT INSERT ON procrastinate_events TO queueing_api;
GRANT USAGE ON SEQUENCE procrastinate_events_id_seq TO queueing_api;

-- Views run with their caller's rights, so a view never widens what its caller sees.
ALTER VIEW queueing_jobs SET (security_invoker = true);

-- The actor's jobs (one of them with p_job_id), newest first: the record an end user
-- needs. Arguments and worker ids are left out: an application that wants to show
-- arguments can store what it shows in its own tables.
CREATE FUNCTION queueing_api_jobs_v1(p_job_id bigint DEFAULT NULL)
    RETURNS TABLE (id bigint, task_name text, queue text, tenant_id text, user_id text,
                   status text, progress integer, progress_detail jsonb, result jsonb,
                   error jsonb, attempts integer, max_attempts integer,
                   created_at timestamptz, scheduled_at timestamptz,
                   started_at timestamptz, finished_at timestamptz,
                   cancel_requested boolean, cancelled_by text, cancelled_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
AS $$
    SELECT v.id, v.task_name, v.queue, v.tenant_id, v.user_id, v.status, v.progress,
           v.progress_detail, v.result, v.error, v.attempts, v.max_attempts,
           v.created_at, v.scheduled_at, v.started_at, v.finished_at,
           v.cancel_requested, v.cancelled_by, v.cancelled_at
      FROM queueing_jobs AS v
     WHERE p_job_id IS NULL OR v.id = p_job_id
     ORDER BY v.id DESC
$$;

-- Cancel one of the actor's jobs with the rules of queueing_cancel_v2, run under the
-- policies above: a job the actor cannot see (another user's, another tenant's) is
-- "not_found". Returns the outcome (cancelled, stop_requested, already_requested,
-- not_found, terminal).
CREATE FUNCTION queueing_api_cancel_v1(p_job_id bigint)
    RETURNS text
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
AS $$
DECLARE
    _actor text := NULLIF(current_setting('queueing.actor', true), '');
    _tenant text := NULLIF(current_setting('queueing.tenant_id', true), '');
    _outcome text;
BEGIN
    IF _actor IS NULL OR _actor NOT IN ('admin', 'user') OR _tenant IS NULL THEN
        RETURN 'not_found';
    END IF;
    SELECT c.outcome INTO _outcome
      FROM queueing_cancel_v2(p_job_id, _actor, _tenant,
                              NULLIF(current_setting('queueing.user_id', true), '')) AS c;
    RETURN _outcome;
END;
$$;

CREATE VIEW queueing_api_jobs WITH (security_invoker = true) AS
    SELECT * FROM queueing_api_jobs_v1();

-- SECURITY DEFINER functions: owned by queueing_api, a pinned search_path (the schema
-- the queue lives in, pg_temp last), and callable only by queueing_app's members.
DO $$
DECLARE
    _schema text := current_schema();
    _super boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
    _fn text;
BEGIN
    IF NOT _super THEN
        -- ALTER ... OWNER needs the new owner to be a role we can act as, with CREATE
        -- on the schema (granted for the change only). Becoming a member of
        -- queueing_api takes CREATEROLE, and from PostgreSQL 16 on, ADMIN on it too
        -- (which its creator has): otherwise an administrator grants it once.
        IF NOT pg_has_role(current_user, 'queueing_api', 'MEMBER') THEN
            BEGIN
                EXECUTE format('GRANT queueing_api TO %I', current_user);
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE EXCEPTION 'role % cannot act as queueing_api', current_user
                    USING HINT = format('as an administrator, run: GRANT queueing_api TO %I',
                                        current_user);
            END;
        END IF;
        EXECUTE format('GRANT CREATE ON SCHEMA %I TO queueing_api', _schema);
    END IF;
    FOREACH _fn IN ARRAY ARRAY['queueing_api_jobs_v1(bigint)', 'queueing_api_cancel_v1(bigint)']
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = pg_catalog, %I, pg_temp', _fn, _schema);
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', _fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO queueing_app', _fn);
        EXECUTE format('ALTER FUNCTION %s OWNER TO queueing_api', _fn);
    END LOOP;
    IF NOT _super THEN
        EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM queueing_api', _schema);
    END IF;
END;
$$;

REVOKE ALL ON queueing_api_jobs FROM PUBLIC;
GRANT SELECT ON queueing_api_jobs TO queueing_app;
