-- sql/schema.sql: the whole database schema of queueing at schema version 15,
-- as procrastinate 3.10.0's base schema plus sql/migrations/0001 to 0015 leave it.
-- Every table, view, index, trigger, policy, grant and function is here in its
-- current form.
--
-- GENERATED, do not edit: change the migrations, then regenerate with
--     scripts/schema-sql
-- (pg_dump 15 --schema-only of a database migrated by Queue.migrate(),
-- made independent of the migrating role). tests/test_schema.py fails when this file and
-- the migrations disagree.
--
-- Databases are built with `queueing db migrate`, not from this file. Running it as a
-- superuser on an empty database gives the same schema (that is what the test does);
-- whoever runs it owns what it creates, as whoever runs the migrations does.

--
-- Cluster-wide roles the schema refers to (created once per cluster)
--

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'queueing_api') THEN
        BEGIN
            CREATE ROLE "queueing_api" NOLOGIN NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile, by this file or a migration in another database
        END;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'queueing_app') THEN
        BEGIN
            CREATE ROLE "queueing_app" NOLOGIN NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile, by this file or a migration in another database
        END;
    END IF;
END;
$$;

--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: procrastinate_job_event_type; Type: TYPE; Schema: public
--

CREATE TYPE public.procrastinate_job_event_type AS ENUM (
    'deferred',
    'started',
    'deferred_for_retry',
    'failed',
    'succeeded',
    'cancelled',
    'abort_requested',
    'aborted',
    'scheduled',
    'retried'
);

--
-- Name: procrastinate_job_status; Type: TYPE; Schema: public
--

CREATE TYPE public.procrastinate_job_status AS ENUM (
    'todo',
    'doing',
    'succeeded',
    'failed',
    'cancelled',
    'aborting',
    'aborted'
);

--
-- Name: procrastinate_job_to_defer_v1; Type: TYPE; Schema: public
--

CREATE TYPE public.procrastinate_job_to_defer_v1 AS (
	queue_name character varying,
	task_name character varying,
	priority integer,
	lock text,
	queueing_lock text,
	args jsonb,
	scheduled_at timestamp with time zone
);

--
-- Name: queueing_outcome_v1; Type: TYPE; Schema: public
--

CREATE TYPE public.queueing_outcome_v1 AS ENUM (
    'succeeded',
    'failed',
    'retry',
    'cancelled',
    'interrupted'
);

--
-- Name: procrastinate_cancel_job_v1(bigint, boolean, boolean); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_cancel_job_v1(job_id bigint, abort boolean, delete_job boolean) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
    _job_id bigint;
BEGIN
    IF delete_job THEN
        DELETE FROM procrastinate_jobs
        WHERE id = job_id AND status = 'todo'
        RETURNING id INTO _job_id;
    END IF;
    IF _job_id IS NULL THEN
        IF abort THEN
            UPDATE procrastinate_jobs
            SET abort_requested = true,
                status = CASE status
                    WHEN 'todo' THEN 'cancelled'::procrastinate_job_status ELSE status
                END
            WHERE id = job_id AND status IN ('todo', 'doing')
            RETURNING id INTO _job_id;
        ELSE
            UPDATE procrastinate_jobs
            SET status = 'cancelled'::procrastinate_job_status
            WHERE id = job_id AND status = 'todo'
            RETURNING id INTO _job_id;
        END IF;
    END IF;
    RETURN _job_id;
END;
$$;

--
-- Name: procrastinate_defer_jobs_v1(public.procrastinate_job_to_defer_v1[]); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_defer_jobs_v1(jobs public.procrastinate_job_to_defer_v1[]) RETURNS bigint[]
    LANGUAGE plpgsql
    AS $$
DECLARE
    job_ids bigint[];
BEGIN
    WITH inserted_jobs AS (
        INSERT INTO procrastinate_jobs (queue_name, task_name, priority, lock, queueing_lock, args, scheduled_at)
        SELECT (job).queue_name,
               (job).task_name,
               (job).priority,
               (job).lock,
               (job).queueing_lock,
               (job).args,
               (job).scheduled_at
        FROM unnest(jobs) AS job
        RETURNING id
    )
    SELECT array_agg(id) FROM inserted_jobs INTO job_ids;

    RETURN job_ids;
END;
$$;

--
-- Name: procrastinate_defer_periodic_job_v2(character varying, character varying, character varying, character varying, integer, character varying, bigint, jsonb); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_defer_periodic_job_v2(_queue_name character varying, _lock character varying, _queueing_lock character varying, _task_name character varying, _priority integer, _periodic_id character varying, _defer_timestamp bigint, _args jsonb) RETURNS bigint
    LANGUAGE plpgsql
    AS $$
DECLARE
	_job_id bigint;
	_defer_id bigint;
BEGIN
    INSERT
        INTO procrastinate_periodic_defers (task_name, periodic_id, defer_timestamp)
        VALUES (_task_name, _periodic_id, _defer_timestamp)
        ON CONFLICT DO NOTHING
        RETURNING id into _defer_id;

    IF _defer_id IS NULL THEN
        RETURN NULL;
    END IF;

    UPDATE procrastinate_periodic_defers
        SET job_id = (
            SELECT COALESCE((
                SELECT unnest(procrastinate_defer_jobs_v1(
                    ARRAY[
                        ROW(
                            _queue_name,
                            _task_name,
                            _priority,
                            _lock,
                            _queueing_lock,
                            _args,
                            NULL::timestamptz
                        )
                    ]::procrastinate_job_to_defer_v1[]
                ))
            ), NULL)
        )
        WHERE id = _defer_id
        RETURNING job_id INTO _job_id;

    DELETE
        FROM procrastinate_periodic_defers
        USING (
            SELECT id
            FROM procrastinate_periodic_defers
            WHERE procrastinate_periodic_defers.task_name = _task_name
            AND procrastinate_periodic_defers.periodic_id = _periodic_id
            AND procrastinate_periodic_defers.defer_timestamp < _defer_timestamp
            ORDER BY id
            FOR UPDATE
        ) to_delete
        WHERE procrastinate_periodic_defers.id = to_delete.id;

    RETURN _job_id;
END;
$$;

SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: procrastinate_jobs; Type: TABLE; Schema: public
--

CREATE TABLE public.procrastinate_jobs (
    id bigint NOT NULL,
    queue_name character varying(128) NOT NULL,
    task_name character varying(128) NOT NULL,
    priority integer DEFAULT 0 NOT NULL,
    lock text,
    queueing_lock text,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    status public.procrastinate_job_status DEFAULT 'todo'::public.procrastinate_job_status NOT NULL,
    scheduled_at timestamp with time zone,
    attempts integer DEFAULT 0 NOT NULL,
    abort_requested boolean DEFAULT false NOT NULL,
    worker_id bigint,
    tenant_id text,
    user_id text,
    progress smallint DEFAULT 0 NOT NULL,
    progress_detail jsonb,
    result jsonb,
    error jsonb,
    max_attempts integer DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    dedupe_key text,
    cancelled_by text,
    cancelled_at timestamp with time zone,
    run_alone boolean DEFAULT false NOT NULL,
    trace_context jsonb,
    schedule_tick timestamp with time zone,
    concurrency_key text,
    concurrency_limit integer,
    CONSTRAINT check_not_todo_abort_requested CHECK ((NOT ((status = 'todo'::public.procrastinate_job_status) AND (abort_requested = true)))),
    CONSTRAINT queueing_dedupe_key_length CHECK ((length(dedupe_key) <= 256)),
    CONSTRAINT queueing_finished_after_started CHECK (((finished_at IS NULL) OR ((created_at <= finished_at) AND ((started_at IS NULL) OR (started_at <= finished_at))))),
    CONSTRAINT queueing_finished_iff_terminal CHECK (((finished_at IS NOT NULL) = (status = ANY (ARRAY['succeeded'::public.procrastinate_job_status, 'failed'::public.procrastinate_job_status, 'cancelled'::public.procrastinate_job_status, 'aborted'::public.procrastinate_job_status])))),
    CONSTRAINT queueing_jobs_concurrency_check CHECK ((((concurrency_key IS NULL) = (concurrency_limit IS NULL)) AND (concurrency_limit >= 1))),
    CONSTRAINT queueing_max_attempts_positive CHECK ((max_attempts >= 1)),
    CONSTRAINT queueing_progress_range CHECK (((progress >= 0) AND (progress <= 100))),
    CONSTRAINT queueing_started_after_created CHECK (((started_at IS NULL) OR (created_at <= started_at)))
);

ALTER TABLE ONLY public.procrastinate_jobs FORCE ROW LEVEL SECURITY;

--
-- Name: procrastinate_fetch_job_v2(character varying[], bigint); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_fetch_job_v2(target_queue_names character varying[], p_worker_id bigint) RETURNS public.procrastinate_jobs
    LANGUAGE plpgsql
    AS $$
DECLARE
	found_jobs procrastinate_jobs;
BEGIN
    WITH candidate AS (
        SELECT jobs.*
            FROM procrastinate_jobs AS jobs
            WHERE
                -- reject the job if its lock has earlier or higher priority jobs
                NOT EXISTS (
                    SELECT 1
                        FROM procrastinate_jobs AS other_jobs
                        WHERE
                            jobs.lock IS NOT NULL
                            AND other_jobs.lock = jobs.lock
                            AND (
                                -- job with same lock is already running
                                other_jobs.status = 'doing'
                                OR
                                -- job with same lock is waiting and has higher priority (or same priority but was queued first)
                                (
                                    other_jobs.status = 'todo'
                                    AND (
                                        other_jobs.priority > jobs.priority
                                        OR (
                                        other_jobs.priority = jobs.priority
                                        AND other_jobs.id < jobs.id
                                        )
                                    )
                                )
                            )
                )
                AND jobs.status = 'todo'
                AND (target_queue_names IS NULL OR jobs.queue_name = ANY( target_queue_names ))
                AND (jobs.scheduled_at IS NULL OR jobs.scheduled_at <= now())
            ORDER BY jobs.priority DESC, jobs.id ASC LIMIT 1
            FOR UPDATE OF jobs SKIP LOCKED
    )
    UPDATE procrastinate_jobs
        SET status = 'doing', worker_id = p_worker_id
        FROM candidate
        WHERE procrastinate_jobs.id = candidate.id
        RETURNING procrastinate_jobs.* INTO found_jobs;

 RETURN found_jobs;
END;
$$;

--
-- Name: procrastinate_finish_job_v1(bigint, public.procrastinate_job_status, boolean); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_finish_job_v1(job_id bigint, end_status public.procrastinate_job_status, delete_job boolean) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    _job_id bigint;
BEGIN
    IF end_status NOT IN ('succeeded', 'failed', 'aborted') THEN
        RAISE 'End status should be either "succeeded", "failed" or "aborted" (job id: %)', job_id;
    END IF;
    IF delete_job THEN
        DELETE FROM procrastinate_jobs
        WHERE id = job_id AND status IN ('todo', 'doing')
        RETURNING id INTO _job_id;
    ELSE
        UPDATE procrastinate_jobs
        SET status = end_status,
            abort_requested = false,
            attempts = CASE status
                WHEN 'doing' THEN attempts + 1 ELSE attempts
            END
        WHERE id = job_id AND status IN ('todo', 'doing')
        RETURNING id INTO _job_id;
    END IF;
    IF _job_id IS NULL THEN
        RAISE 'Job was not found or not in "doing" or "todo" status (job id: %)', job_id;
    END IF;
END;
$$;

--
-- Name: procrastinate_notify_queue_abort_job_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_notify_queue_abort_job_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    payload TEXT;
BEGIN
    SELECT json_build_object('type', 'abort_job_requested', 'job_id', NEW.id)::text INTO payload;
	PERFORM pg_notify('procrastinate_queue_v1#' || NEW.queue_name, payload);
	PERFORM pg_notify('procrastinate_any_queue_v1', payload);
	RETURN NEW;
END;
$$;

--
-- Name: procrastinate_notify_queue_job_inserted_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_notify_queue_job_inserted_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    payload TEXT;
BEGIN
    SELECT json_build_object('type', 'job_inserted', 'job_id', NEW.id)::text INTO payload;
	PERFORM pg_notify('procrastinate_queue_v1#' || NEW.queue_name, payload);
	PERFORM pg_notify('procrastinate_any_queue_v1', payload);
	RETURN NEW;
END;
$$;

--
-- Name: procrastinate_prune_stalled_workers_v1(double precision); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_prune_stalled_workers_v1(seconds_since_heartbeat double precision) RETURNS TABLE(worker_id bigint)
    LANGUAGE plpgsql
    AS $$
BEGIN
    RETURN QUERY
    DELETE FROM procrastinate_workers
    WHERE last_heartbeat < NOW() - (seconds_since_heartbeat || 'SECOND')::INTERVAL
    RETURNING procrastinate_workers.id;
END;
$$;

--
-- Name: procrastinate_register_worker_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_register_worker_v1() RETURNS TABLE(worker_id bigint)
    LANGUAGE plpgsql
    AS $$
BEGIN
    RETURN QUERY
    INSERT INTO procrastinate_workers DEFAULT VALUES
    RETURNING procrastinate_workers.id;
END;
$$;

--
-- Name: procrastinate_retry_job_v1(bigint, timestamp with time zone, integer, character varying, character varying); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_retry_job_v1(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    _job_id bigint;
    _abort_requested boolean;
BEGIN
    SELECT abort_requested FROM procrastinate_jobs
    WHERE id = job_id AND status = 'doing'
    FOR UPDATE
    INTO _abort_requested;
    IF _abort_requested THEN
        UPDATE procrastinate_jobs
        SET status = 'failed'::procrastinate_job_status
        WHERE id = job_id AND status = 'doing'
        RETURNING id INTO _job_id;
    ELSE
        UPDATE procrastinate_jobs
        SET status = 'todo'::procrastinate_job_status,
            attempts = attempts + 1,
            scheduled_at = retry_at,
            priority = COALESCE(new_priority, priority),
            queue_name = COALESCE(new_queue_name, queue_name),
            lock = COALESCE(new_lock, lock)
        WHERE id = job_id AND status = 'doing'
        RETURNING id INTO _job_id;
    END IF;

    IF _job_id IS NULL THEN
        RAISE 'Job was not found or not in "doing" status (job id: %)', job_id;
    END IF;
END;
$$;

--
-- Name: procrastinate_retry_job_v2(bigint, timestamp with time zone, integer, character varying, character varying); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_retry_job_v2(job_id bigint, retry_at timestamp with time zone, new_priority integer, new_queue_name character varying, new_lock character varying) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    _job_id bigint;
    _abort_requested boolean;
    _current_status procrastinate_job_status;
BEGIN
    SELECT status, abort_requested FROM procrastinate_jobs
    WHERE id = job_id AND status IN ('doing', 'failed')
    FOR UPDATE
    INTO _current_status, _abort_requested;
    IF _current_status = 'doing' AND _abort_requested THEN
        UPDATE procrastinate_jobs
        SET status = 'failed'::procrastinate_job_status
        WHERE id = job_id AND status = 'doing'
        RETURNING id INTO _job_id;
    ELSE
        UPDATE procrastinate_jobs
        SET status = 'todo'::procrastinate_job_status,
            attempts = attempts + 1,
            scheduled_at = retry_at,
            priority = COALESCE(new_priority, priority),
            queue_name = COALESCE(new_queue_name, queue_name),
            lock = COALESCE(new_lock, lock)
        WHERE id = job_id AND status IN ('doing', 'failed')
        RETURNING id INTO _job_id;
    END IF;

    IF _job_id IS NULL THEN
        RAISE 'Job was not found or has an invalid status to retry (job id: %)', job_id;
    END IF;

END;
$$;

--
-- Name: procrastinate_trigger_abort_requested_events_procedure_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_trigger_abort_requested_events_procedure_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO procrastinate_events(job_id, type)
        VALUES (NEW.id, 'abort_requested'::procrastinate_job_event_type);
    RETURN NEW;
END;
$$;

--
-- Name: procrastinate_trigger_function_scheduled_events_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_trigger_function_scheduled_events_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO procrastinate_events(job_id, type, at)
        VALUES (NEW.id, 'scheduled'::procrastinate_job_event_type, NEW.scheduled_at);

	RETURN NEW;
END;
$$;

--
-- Name: procrastinate_trigger_function_status_events_insert_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_trigger_function_status_events_insert_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO procrastinate_events(job_id, type)
        VALUES (NEW.id, 'deferred'::procrastinate_job_event_type);
	RETURN NEW;
END;
$$;

--
-- Name: procrastinate_trigger_function_status_events_update_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_trigger_function_status_events_update_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    WITH t AS (
        SELECT CASE
            WHEN OLD.status = 'todo'::procrastinate_job_status
                AND NEW.status = 'doing'::procrastinate_job_status
                THEN 'started'::procrastinate_job_event_type
            WHEN OLD.status = 'doing'::procrastinate_job_status
                AND NEW.status = 'todo'::procrastinate_job_status
                THEN 'deferred_for_retry'::procrastinate_job_event_type
            WHEN OLD.status = 'doing'::procrastinate_job_status
                AND NEW.status = 'failed'::procrastinate_job_status
                THEN 'failed'::procrastinate_job_event_type
            WHEN OLD.status = 'doing'::procrastinate_job_status
                AND NEW.status = 'succeeded'::procrastinate_job_status
                THEN 'succeeded'::procrastinate_job_event_type
            WHEN OLD.status = 'todo'::procrastinate_job_status
                AND (
                    NEW.status = 'cancelled'::procrastinate_job_status
                    OR NEW.status = 'failed'::procrastinate_job_status
                    OR NEW.status = 'succeeded'::procrastinate_job_status
                )
                THEN 'cancelled'::procrastinate_job_event_type
            WHEN OLD.status = 'doing'::procrastinate_job_status
                AND NEW.status = 'aborted'::procrastinate_job_status
                THEN 'aborted'::procrastinate_job_event_type
            WHEN OLD.status = 'failed'::procrastinate_job_status
                AND NEW.status = 'todo'::procrastinate_job_status
                THEN 'retried'::procrastinate_job_event_type
            ELSE NULL
        END as event_type
    )
    INSERT INTO procrastinate_events(job_id, type)
        SELECT NEW.id, t.event_type
        FROM t
        WHERE t.event_type IS NOT NULL;
	RETURN NEW;
END;
$$;

--
-- Name: procrastinate_unlink_periodic_defers_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_unlink_periodic_defers_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE procrastinate_periodic_defers
    SET job_id = NULL
    WHERE job_id = OLD.id;
    RETURN OLD;
END;
$$;

--
-- Name: procrastinate_unregister_worker_v1(bigint); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_unregister_worker_v1(worker_id bigint) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    DELETE FROM procrastinate_workers
    WHERE id = worker_id;
END;
$$;

--
-- Name: procrastinate_update_heartbeat_v1(bigint); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.procrastinate_update_heartbeat_v1(worker_id bigint) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    UPDATE procrastinate_workers
    SET last_heartbeat = NOW()
    WHERE id = worker_id;
END;
$$;

--
-- Name: queueing_actor_sees_v1(text, text); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_actor_sees_v1(p_tenant_id text, p_user_id text) RETURNS boolean
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

--
-- Name: queueing_api_cancel_v1(bigint); Type: FUNCTION; Schema: public; Owner: queueing_api
--

CREATE FUNCTION public.queueing_api_cancel_v1(p_job_id bigint) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
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

ALTER FUNCTION public.queueing_api_cancel_v1(p_job_id bigint) OWNER TO queueing_api;

--
-- Name: queueing_api_jobs_v1(bigint); Type: FUNCTION; Schema: public; Owner: queueing_api
--

CREATE FUNCTION public.queueing_api_jobs_v1(p_job_id bigint DEFAULT NULL::bigint) RETURNS TABLE(id bigint, task_name text, queue text, tenant_id text, user_id text, status text, progress integer, progress_detail jsonb, result jsonb, error jsonb, attempts integer, max_attempts integer, created_at timestamp with time zone, scheduled_at timestamp with time zone, started_at timestamp with time zone, finished_at timestamp with time zone, cancel_requested boolean, cancelled_by text, cancelled_at timestamp with time zone)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path TO 'pg_catalog', 'public', 'pg_temp'
    AS $$
    SELECT v.id, v.task_name, v.queue, v.tenant_id, v.user_id, v.status, v.progress,
           v.progress_detail, v.result, v.error, v.attempts, v.max_attempts,
           v.created_at, v.scheduled_at, v.started_at, v.finished_at,
           v.cancel_requested, v.cancelled_by, v.cancelled_at
      FROM queueing_jobs AS v
     WHERE p_job_id IS NULL OR v.id = p_job_id
     ORDER BY v.id DESC
$$;

ALTER FUNCTION public.queueing_api_jobs_v1(p_job_id bigint) OWNER TO queueing_api;

--
-- Name: queueing_cancel_v2(bigint, text, text, text); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_cancel_v2(p_job_id bigint, p_actor text, p_tenant text, p_user text) RETURNS TABLE(outcome text, job text)
    LANGUAGE plpgsql
    AS $$
DECLARE
    _job procrastinate_jobs;
    _by text;
BEGIN
    IF p_actor NOT IN ('system', 'admin', 'user') THEN
        RAISE EXCEPTION 'unknown actor kind %', p_actor;
    END IF;
    SELECT * INTO _job FROM procrastinate_jobs WHERE id = p_job_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::text;
        RETURN;
    END IF;
    IF p_actor <> 'system' AND _job.tenant_id IS DISTINCT FROM p_tenant THEN
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
        RETURN;
END;
$$;

--
-- Name: queueing_cancel_v3(bigint, text, text, text, text); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_cancel_v3(p_job_id bigint, p_actor text, p_tenant text, p_user text, p_operator text) RETURNS TABLE(outcome text, job text)
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

--
-- Name: queueing_claim_restricted_v1(character varying[], integer, text[], text[]); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_claim_restricted_v1(p_queues character varying[], p_limit integer, p_paused text[], p_limited text[]) RETURNS bigint[]
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    SET enable_bitmapscan TO 'off'
    AS $$
DECLARE
    _held    text[] := '{}';   -- limited queues whose lock this claim holds
    _blocked text[];           -- queues nothing may be claimed from this round
    _queues  text[];           -- queues served, for jobs without a key
    _keys    text[] := '{}';   -- keys whose lock this claim holds
    _ids     bigint[];
BEGIN
    IF p_limited IS NOT NULL THEN
        SELECT COALESCE(array_agg(l.name), '{}') INTO _held
          FROM unnest(p_limited) AS l(name)
         WHERE (p_queues IS NULL OR l.name = ANY(p_queues))
           AND pg_try_advisory_xact_lock(hashtext('queueing_queue_limit'), hashtext(l.name));
    END IF;
    _blocked := COALESCE(p_paused, '{}')
                || ARRAY(SELECT unnest(COALESCE(p_limited, '{}')) EXCEPT SELECT unnest(_held));
    -- Jobs without a key: per served queue (one index descent each), so a paused or full
    -- queue's jobs are never walked. All queues: the queues holding such jobs, by a
    -- skip scan of queueing_jobs_ready_queue_v2_idx (one probe per queue).
    IF p_queues IS NOT NULL THEN
        _queues := ARRAY(SELECT unnest(p_queues::text[]) EXCEPT SELECT unnest(_blocked));
    ELSE
        -- Ordered as the index is, so no other index (procrastinate's on queue_name
        -- holds every job) can serve the probe without a sort.
        WITH RECURSIVE q AS (
            (SELECT j.queue_name FROM procrastinate_jobs AS j
              WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND NOT j.run_alone
                AND j.concurrency_key IS NULL
              ORDER BY j.queue_name, j.priority DESC, j.id LIMIT 1)
            UNION ALL
            SELECT (SELECT j.queue_name FROM procrastinate_jobs AS j
                     WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND NOT j.run_alone
                       AND j.concurrency_key IS NULL AND j.queue_name > q.queue_name
                     ORDER BY j.queue_name, j.priority DESC, j.id LIMIT 1)
              FROM q WHERE q.queue_name IS NOT NULL
        )
        SELECT ARRAY(SELECT q.queue_name::text FROM q WHERE q.queue_name IS NOT NULL
                     EXCEPT SELECT unnest(_blocked)) INTO _queues;
    END IF;
    -- The keys with waiting jobs (a skip scan of queueing_jobs_keyed_idx), each locked.
    WITH RECURSIVE k AS (
        (SELECT j.concurrency_key AS key FROM procrastinate_jobs AS j
          WHERE j.status = 'todo' AND j.concurrency_key IS NOT NULL AND NOT j.run_alone
          ORDER BY j.concurrency_key, j.priority DESC, j.id LIMIT 1)
        UNION ALL
        SELECT (SELECT j.concurrency_key FROM procrastinate_jobs AS j
                 WHERE j.status = 'todo' AND j.concurrency_key IS NOT NULL AND NOT j.run_alone
                   AND j.concurrency_key > k.key
                 ORDER BY j.concurrency_key, j.priority DESC, j.id LIMIT 1)
          FROM k WHERE k.key IS NOT NULL
    )
    SELECT COALESCE(array_agg(k.key), '{}') INTO _keys
      FROM k
     WHERE k.key IS NOT NULL
       AND pg_try_advisory_xact_lock(hashtext('queueing_key'), hashtext(k.key));
    -- A new statement, so a new snapshot: taken after every lock above was granted.
    WITH room AS (
        SELECT h.name, GREATEST(0, q.max_active
               -- On an index of the doing jobs (at most the workers' concurrency): the
               -- "|| ''" keeps procrastinate's index of every job on queue_name out.
               - (SELECT count(*) FROM procrastinate_jobs AS a
                   WHERE a.status = 'doing' AND a.queue_name || '' = h.name))::integer
               AS free
          FROM unnest(_held) AS h(name)
          JOIN queueing_queues AS q ON q.name = h.name
    ), ready AS (
        SELECT r.id, r.priority, r.queue_name
          FROM unnest(_queues) AS s(name)
          LEFT JOIN room ON room.name = s.name
         CROSS JOIN LATERAL (
               SELECT j.id, j.priority, j.queue_name
                 FROM procrastinate_jobs AS j
                WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND NOT j.run_alone
                  AND j.concurrency_key IS NULL AND j.queue_name = s.name
                ORDER BY j.queue_name, j.priority DESC, j.id ASC
                LIMIT LEAST(p_limit, COALESCE(room.free, p_limit))
                  FOR UPDATE SKIP LOCKED) AS r
    ), due AS (
        SELECT j.id, j.priority, j.queue_name
          FROM procrastinate_jobs AS j
         WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
           AND j.scheduled_at <= now() AND NOT j.run_alone AND j.concurrency_key IS NULL
           AND (p_queues IS NULL OR j.queue_name = ANY(p_queues))
           AND j.queue_name <> ALL(_blocked)
         ORDER BY j.scheduled_at ASC, j.id ASC
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), keys AS (
        -- A key's limit is that of its job next in line (jobs of a key share one).
        SELECT k.key, GREATEST(0,
               (SELECT j.concurrency_limit FROM procrastinate_jobs AS j
                 WHERE j.status = 'todo' AND j.concurrency_key = k.key AND NOT j.run_alone
                 ORDER BY j.concurrency_key, j.priority DESC, j.id ASC LIMIT 1)
               - (SELECT count(*) FROM procrastinate_jobs AS a
                   WHERE a.concurrency_key = k.key AND a.status IN ('doing', 'aborting')))::integer
               AS free
          FROM unnest(_keys) AS k(key)
    ), keyed AS (
        SELECT c.id, c.priority, c.queue_name
          FROM keys
         CROSS JOIN LATERAL (
               SELECT j.id, j.priority, j.queue_name
                 FROM procrastinate_jobs AS j
                WHERE j.status = 'todo' AND j.concurrency_key = keys.key AND NOT j.run_alone
                  AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
                  AND (p_queues IS NULL OR j.queue_name = ANY(p_queues))
                  AND j.queue_name <> ALL(_blocked)
                ORDER BY j.concurrency_key, j.priority DESC, j.id ASC
                LIMIT LEAST(p_limit, keys.free)
                  FOR UPDATE SKIP LOCKED) AS c
    ), ranked AS (
        -- A limited queue's room holds across the three kinds of candidates.
        SELECT b.id, b.priority, b.queue_name,
               row_number() OVER (PARTITION BY b.queue_name ORDER BY b.priority DESC, b.id) AS n
          FROM (TABLE ready UNION ALL TABLE due UNION ALL TABLE keyed) AS b
    )
    SELECT array_agg(c.id) INTO _ids
      FROM (SELECT r.id FROM ranked AS r
              LEFT JOIN room ON room.name = r.queue_name
             WHERE room.free IS NULL OR r.n <= room.free
             ORDER BY r.priority DESC, r.id ASC
             LIMIT p_limit) AS c;
    RETURN _ids;
END;
$$;

--
-- Name: queueing_claim_v3(character varying[], bigint, integer, boolean); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_claim_v3(p_queues character varying[], p_worker_id bigint, p_limit integer, p_idle boolean) RETURNS TABLE(id bigint, task_name character varying, queue_name character varying, args jsonb, attempts integer, max_attempts integer, tenant_id text, user_id text, run_alone boolean, due_at timestamp with time zone, trace_context jsonb)
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    SET enable_bitmapscan TO 'off'
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
                  j.tenant_id, j.user_id, j.run_alone, GREATEST(j.scheduled_at, j.created_at),
                  j.trace_context;
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
              j.tenant_id, j.user_id, j.run_alone, GREATEST(j.scheduled_at, j.created_at),
                  j.trace_context;
END;
$$;

--
-- Name: queueing_claim_v5(character varying[], bigint, integer, boolean); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_claim_v5(p_queues character varying[], p_worker_id bigint, p_limit integer, p_idle boolean) RETURNS TABLE(id bigint, task_name character varying, queue_name character varying, args jsonb, attempts integer, max_attempts integer, tenant_id text, user_id text, run_alone boolean, due_at timestamp with time zone, trace_context jsonb, schedule_tick timestamp with time zone, limited boolean)
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    SET enable_bitmapscan TO 'off'
    AS $$
DECLARE
    _ids     bigint[];
    _paused  text[];
    _limited text[];
    _key     text;
BEGIN
    SELECT array_agg(q.name) FILTER (WHERE q.paused),
           array_agg(q.name) FILTER (WHERE NOT q.paused)
      INTO _paused, _limited
      FROM queueing_queues AS q
     WHERE q.paused OR q.max_active IS NOT NULL;
    IF p_idle THEN
        -- The worker runs nothing: it may take a job that must run alone (0006). Its key
        -- and its queue's limit are not counted: it runs once, alone, to find a poison pill.
        SELECT array_agg(j.id) INTO _ids
          FROM (SELECT j.id
                  FROM procrastinate_jobs AS j
                 WHERE j.status = 'todo' AND j.run_alone
                   AND (p_queues IS NULL OR j.queue_name = ANY(p_queues))
                   AND (_paused IS NULL OR j.queue_name <> ALL(_paused))
                   AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
                 ORDER BY j.priority DESC, j.id ASC
                 LIMIT 1
                   FOR UPDATE SKIP LOCKED) AS j;
    END IF;
    IF _ids IS NULL AND _paused IS NULL AND _limited IS NULL THEN
        -- Is a job with a key waiting? One probe of queueing_jobs_keyed_idx: ordered as
        -- that index is, so the planner cannot pick an index of every pending job and
        -- walk it (with none waiting, the whole of it).
        SELECT j.concurrency_key INTO _key
          FROM procrastinate_jobs AS j
         WHERE j.status = 'todo' AND j.concurrency_key IS NOT NULL AND NOT j.run_alone
         ORDER BY j.concurrency_key, j.priority DESC, j.id
         LIMIT 1;
    END IF;
    IF _ids IS NULL AND (_paused IS NOT NULL OR _limited IS NOT NULL OR _key IS NOT NULL) THEN
        _ids := queueing_claim_restricted_v1(p_queues, p_limit, _paused, _limited);
    ELSIF _ids IS NULL AND p_queues IS NULL THEN
        -- Nothing restricts this claim: 0008's paths (queueing_claim_v4), on the v2 indexes.
        WITH ready AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND NOT j.run_alone
               AND j.concurrency_key IS NULL AND j.priority IS NOT NULL
             ORDER BY j.priority DESC, j.id ASC
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        ), due AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
               AND j.scheduled_at <= now() AND NOT j.run_alone AND j.concurrency_key IS NULL
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
                      AND j.concurrency_key IS NULL AND j.queue_name = q.name
                    ORDER BY j.priority DESC, j.id ASC
                    LIMIT p_limit
                      FOR UPDATE SKIP LOCKED) AS r
        ), due AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
               AND j.scheduled_at <= now() AND NOT j.run_alone AND j.concurrency_key IS NULL
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
              j.trace_context, j.schedule_tick,
              j.concurrency_key IS NOT NULL OR j.queue_name = ANY(_limited);
END;
$$;

--
-- Name: queueing_claim_v6(character varying[], bigint, integer, boolean); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_claim_v6(p_queues character varying[], p_worker_id bigint, p_limit integer, p_idle boolean) RETURNS TABLE(id bigint, task_name character varying, queue_name character varying, args jsonb, attempts integer, max_attempts integer, tenant_id text, user_id text, run_alone boolean, due_at timestamp with time zone, trace_context jsonb, schedule_tick timestamp with time zone, limited boolean)
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    SET enable_bitmapscan TO 'off'
    SET jit TO 'off'
    AS $$
DECLARE
    _ids     bigint[];
    _paused  text[];
    _limited text[];
    _key     text;
    _now     timestamptz;
BEGIN
    SELECT array_agg(q.name) FILTER (WHERE q.paused),
           array_agg(q.name) FILTER (WHERE NOT q.paused)
      INTO _paused, _limited
      FROM queueing_queues AS q
     WHERE q.paused OR q.max_active IS NOT NULL;
    IF p_idle THEN
        -- The worker runs nothing: it may take a job that must run alone (0006). Its key
        -- and its queue's limit are not counted: it runs once, alone, to find a poison pill.
        SELECT array_agg(j.id) INTO _ids
          FROM (SELECT j.id
                  FROM procrastinate_jobs AS j
                 WHERE j.status = 'todo' AND j.run_alone
                   AND (p_queues IS NULL OR j.queue_name = ANY(p_queues))
                   AND (_paused IS NULL OR j.queue_name <> ALL(_paused))
                   AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
                 ORDER BY j.priority DESC, j.id ASC
                 LIMIT 1
                   FOR UPDATE SKIP LOCKED) AS j;
    END IF;
    IF _ids IS NULL AND _paused IS NULL AND _limited IS NULL THEN
        -- Is a job with a key waiting? One probe of queueing_jobs_keyed_idx: ordered as
        -- that index is, so the planner cannot pick an index of every pending job and
        -- walk it (with none waiting, the whole of it).
        SELECT j.concurrency_key INTO _key
          FROM procrastinate_jobs AS j
         WHERE j.status = 'todo' AND j.concurrency_key IS NOT NULL AND NOT j.run_alone
         ORDER BY j.concurrency_key, j.priority DESC, j.id
         LIMIT 1;
    END IF;
    IF _ids IS NULL AND (_paused IS NOT NULL OR _limited IS NOT NULL OR _key IS NOT NULL) THEN
        _ids := queueing_claim_restricted_v1(p_queues, p_limit, _paused, _limited);
    ELSIF _ids IS NULL AND p_queues IS NULL THEN
        -- Nothing restricts this claim: 0008's paths (queueing_claim_v4), on the v2 indexes.
        WITH ready AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NULL AND NOT j.run_alone
               AND j.concurrency_key IS NULL AND j.priority IS NOT NULL
             ORDER BY j.priority DESC, j.id ASC
             LIMIT p_limit
               FOR UPDATE SKIP LOCKED
        ), due AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
               AND j.scheduled_at <= now() AND NOT j.run_alone AND j.concurrency_key IS NULL
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
                      AND j.concurrency_key IS NULL AND j.queue_name = q.name
                    ORDER BY j.priority DESC, j.id ASC
                    LIMIT p_limit
                      FOR UPDATE SKIP LOCKED) AS r
        ), due AS (
            SELECT j.id, j.priority
              FROM procrastinate_jobs AS j
             WHERE j.status = 'todo' AND j.scheduled_at IS NOT NULL
               AND j.scheduled_at <= now() AND NOT j.run_alone AND j.concurrency_key IS NULL
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
    _now := clock_timestamp();
    RETURN QUERY
    -- Stamped here, as queueing_stamp_job_v1 would (setting updated_at skips it).
    UPDATE procrastinate_jobs AS j
       SET status = 'doing', worker_id = p_worker_id, attempts = j.attempts + 1,
           started_at = GREATEST(_now, j.created_at), finished_at = NULL,
           updated_at = GREATEST(_now, j.updated_at, j.created_at)
     WHERE j.id = ANY(_ids)
    RETURNING j.id, j.task_name, j.queue_name, j.args, j.attempts, j.max_attempts,
              j.tenant_id, j.user_id, j.run_alone, GREATEST(j.scheduled_at, j.created_at),
              j.trace_context, j.schedule_tick,
              j.concurrency_key IS NOT NULL OR j.queue_name = ANY(_limited);
END;
$$;

--
-- Name: queueing_claim_v7(character varying[], bigint, integer, boolean); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_claim_v7(p_queues character varying[], p_worker_id bigint, p_limit integer, p_idle boolean) RETURNS TABLE(id bigint, task_name character varying, queue_name character varying, args jsonb, attempts integer, max_attempts integer, tenant_id text, user_id text, run_alone boolean, due_at timestamp with time zone, trace_context jsonb, schedule_tick timestamp with time zone, limited boolean)
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

--
-- Name: queueing_claim_v8(character varying[], bigint, integer, boolean); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_claim_v8(p_queues character varying[], p_worker_id bigint, p_limit integer, p_idle boolean) RETURNS TABLE(id bigint, task_name character varying, queue_name character varying, args jsonb, attempts integer, max_attempts integer, tenant_id text, user_id text, run_alone boolean, due_at timestamp with time zone, trace_context jsonb, schedule_tick timestamp with time zone, limited boolean)
    LANGUAGE plpgsql
    SET plan_cache_mode TO 'force_generic_plan'
    AS $$
BEGIN
    RETURN QUERY SELECT * FROM queueing_claim_v7(p_queues, p_worker_id, p_limit, p_idle);
END;
$$;

--
-- Name: queueing_delete_attempts_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_delete_attempts_v1() RETURNS trigger
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

--
-- Name: queueing_enqueue_rows_v1(json); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_enqueue_rows_v1(p_jobs json) RETURNS TABLE(queue_name character varying, task_name character varying, priority integer, args jsonb, scheduled_at timestamp with time zone, tenant_id text, user_id text, max_attempts integer, dedupe_key text, dedupe_for interval, n bigint)
    LANGUAGE sql STABLE
    AS $$
    SELECT * FROM ROWS FROM (
        json_to_recordset(p_jobs) AS (queue_name character varying,
                                      task_name character varying, priority integer,
                                      args jsonb, scheduled_at timestamptz, tenant_id text,
                                      user_id text, max_attempts integer, dedupe_key text,
                                      dedupe_for interval)
    ) WITH ORDINALITY
$$;

--
-- Name: queueing_status_name_v1(public.procrastinate_job_status); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_status_name_v1(s public.procrastinate_job_status) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT CASE s
        WHEN 'todo'      THEN 'pending'
        WHEN 'doing'     THEN 'active'
        WHEN 'aborting'  THEN 'active'
        WHEN 'succeeded' THEN 'completed'
        WHEN 'failed'    THEN 'failed'
        WHEN 'cancelled' THEN 'cancelled'
        WHEN 'aborted'   THEN 'cancelled'
    END
$$;

--
-- Name: queueing_jobs; Type: VIEW; Schema: public
--

CREATE VIEW public.queueing_jobs WITH (security_invoker='true') AS
 SELECT procrastinate_jobs.id,
    procrastinate_jobs.task_name,
    procrastinate_jobs.queue_name AS queue,
    procrastinate_jobs.tenant_id,
    procrastinate_jobs.user_id,
    public.queueing_status_name_v1(procrastinate_jobs.status) AS status,
    procrastinate_jobs.progress,
    procrastinate_jobs.progress_detail,
    procrastinate_jobs.args,
    procrastinate_jobs.result,
    procrastinate_jobs.error,
    procrastinate_jobs.attempts,
    procrastinate_jobs.max_attempts,
    procrastinate_jobs.priority,
    procrastinate_jobs.abort_requested AS cancel_requested,
    procrastinate_jobs.worker_id,
    procrastinate_jobs.created_at,
    COALESCE(procrastinate_jobs.scheduled_at, procrastinate_jobs.created_at) AS scheduled_at,
    procrastinate_jobs.started_at,
    procrastinate_jobs.finished_at,
    procrastinate_jobs.updated_at,
    procrastinate_jobs.dedupe_key,
    procrastinate_jobs.cancelled_by,
    procrastinate_jobs.cancelled_at
   FROM public.procrastinate_jobs;

--
-- Name: queueing_enqueue_v1(json); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_enqueue_v1(p_jobs json) RETURNS SETOF public.queueing_jobs
    LANGUAGE plpgsql
    AS $$
DECLARE
    _ids bigint[];
BEGIN
    WITH inserted AS (
        INSERT INTO procrastinate_jobs
               (queue_name, task_name, priority, args, scheduled_at, tenant_id, user_id, max_attempts)
        SELECT j.queue_name, j.task_name, j.priority, j.args, j.scheduled_at, j.tenant_id,
               j.user_id, j.max_attempts
          FROM ROWS FROM (
                   json_to_recordset(p_jobs) AS (queue_name character varying,
                                                 task_name character varying,
                                                 priority integer, args jsonb,
                                                 scheduled_at timestamptz, tenant_id text,
                                                 user_id text, max_attempts integer)
               ) WITH ORDINALITY AS j(queue_name, task_name, priority, args, scheduled_at,
                                      tenant_id, user_id, max_attempts, n)
         ORDER BY j.n
        RETURNING id
    )
    SELECT array_agg(id) INTO _ids FROM inserted;
    RETURN QUERY SELECT * FROM queueing_jobs WHERE id = ANY(_ids) ORDER BY id;
END;
$$;

--
-- Name: queueing_enqueue_v2(json); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_enqueue_v2(p_jobs json) RETURNS TABLE(job text)
    LANGUAGE plpgsql
    AS $$
DECLARE
    _plain_ids bigint[];
    _keyed_n integer[] := '{}';
    _keyed_ids bigint[] := '{}';
    _keyed_created boolean[] := '{}';
    _row record;
    _id bigint;
BEGIN
    -- Jobs without a key: one insert. Ids are drawn in ORDER BY n order, so the k-th
    -- smallest id belongs to the k-th keyless row.
    WITH inserted AS (
        INSERT INTO procrastinate_jobs
               (queue_name, task_name, priority, args, scheduled_at, tenant_id, user_id,
                max_attempts)
        SELECT b.queue_name, b.task_name, b.priority, b.args, b.scheduled_at, b.tenant_id,
               b.user_id, b.max_attempts
          FROM queueing_enqueue_rows_v1(p_jobs) AS b
         WHERE b.dedupe_key IS NULL
         ORDER BY b.n
        RETURNING id
    )
    SELECT array_agg(id ORDER BY id) INTO _plain_ids FROM inserted;

    -- Jobs with a key: one at a time, under the key's lock, which is held until commit.
    FOR _row IN
        SELECT * FROM queueing_enqueue_rows_v1(p_jobs) AS b WHERE b.dedupe_key IS NOT NULL ORDER BY b.n
    LOOP
        PERFORM pg_advisory_xact_lock(
            hashtextextended(COALESCE(_row.tenant_id, '') || chr(31) || _row.dedupe_key, 7));
        SELECT j.id INTO _id
          FROM procrastinate_jobs AS j
         WHERE COALESCE(j.tenant_id, '') = COALESCE(_row.tenant_id, '')
           AND j.dedupe_key = _row.dedupe_key
           AND (j.status IN ('todo', 'doing')
                OR (_row.dedupe_for IS NOT NULL AND j.status = 'succeeded'
                    AND j.finished_at > clock_timestamp() - _row.dedupe_for))
         ORDER BY j.id DESC
         LIMIT 1;
        _keyed_n := _keyed_n || _row.n::integer;
        IF _id IS NOT NULL THEN
            _keyed_ids := _keyed_ids || _id;
            _keyed_created := _keyed_created || false;
        ELSE
            INSERT INTO procrastinate_jobs
                   (queue_name, task_name, priority, args, scheduled_at, tenant_id, user_id,
                    max_attempts, dedupe_key)
            VALUES (_row.queue_name, _row.task_name, _row.priority, _row.args,
                    _row.scheduled_at, _row.tenant_id, _row.user_id, _row.max_attempts,
                    _row.dedupe_key)
            RETURNING procrastinate_jobs.id INTO _id;
            _keyed_ids := _keyed_ids || _id;
            _keyed_created := _keyed_created || true;
        END IF;
    END LOOP;

    RETURN QUERY
        WITH placed AS (
            SELECT p.n, _plain_ids[row_number() OVER (ORDER BY p.n)] AS id, true AS created
              FROM queueing_enqueue_rows_v1(p_jobs) AS p
             WHERE p.dedupe_key IS NULL
            UNION ALL
            SELECT k.n, k.id, k.created
              FROM unnest(_keyed_n, _keyed_ids, _keyed_created) AS k(n, id, created)
        )
        SELECT (to_jsonb(v) || jsonb_build_object('created', c.created))::text
          FROM placed AS c
          JOIN queueing_jobs AS v ON v.id = c.id
         ORDER BY c.n;
END;
$$;

--
-- Name: queueing_enqueue_v3(json); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_enqueue_v3(p_jobs json) RETURNS TABLE(job text)
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    SET jit TO 'off'
    AS $$
DECLARE
    _ids bigint[];
BEGIN
    WITH inserted AS (
        INSERT INTO procrastinate_jobs
               (queue_name, task_name, priority, args, scheduled_at, tenant_id, user_id,
                max_attempts)
        SELECT j.queue_name, j.task_name, j.priority, j.args, j.scheduled_at, j.tenant_id,
               j.user_id, j.max_attempts
          FROM ROWS FROM (
                   json_to_recordset(p_jobs) AS (queue_name character varying,
                                                 task_name character varying,
                                                 priority integer, args jsonb,
                                                 scheduled_at timestamptz, tenant_id text,
                                                 user_id text, max_attempts integer)
               ) WITH ORDINALITY AS j(queue_name, task_name, priority, args, scheduled_at,
                                      tenant_id, user_id, max_attempts, n)
         ORDER BY j.n
        RETURNING id
    )
    SELECT array_agg(id) INTO _ids FROM inserted;
    RETURN QUERY
        SELECT (to_jsonb(v) || '{"created": true}'::jsonb)::text
          FROM queueing_jobs AS v
         WHERE v.id = ANY(_ids)
         ORDER BY v.id;
END;
$$;

--
-- Name: queueing_enqueue_v4(json); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_enqueue_v4(p_jobs json) RETURNS TABLE(job text)
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    SET jit TO 'off'
    AS $$
DECLARE
    _plain_ids bigint[];
    _keyed_n integer[] := '{}';
    _keyed_ids bigint[] := '{}';
    _keyed_created boolean[] := '{}';
    _row record;
    _id bigint;
BEGIN
    -- Jobs without a key: one insert. Ids are drawn in ORDER BY n order, so the k-th
    -- smallest id belongs to the k-th keyless row.
    WITH inserted AS (
        INSERT INTO procrastinate_jobs
               (queue_name, task_name, priority, args, scheduled_at, tenant_id, user_id,
                max_attempts)
        SELECT b.queue_name, b.task_name, b.priority, b.args, b.scheduled_at, b.tenant_id,
               b.user_id, b.max_attempts
          FROM queueing_enqueue_rows_v1(p_jobs) AS b
         WHERE b.dedupe_key IS NULL
         ORDER BY b.n
        RETURNING id
    )
    SELECT array_agg(id ORDER BY id) INTO _plain_ids FROM inserted;

    -- Jobs with a key: one at a time, under the key's lock, which is held until commit.
    FOR _row IN
        SELECT * FROM queueing_enqueue_rows_v1(p_jobs) AS b WHERE b.dedupe_key IS NOT NULL ORDER BY b.n
    LOOP
        PERFORM pg_advisory_xact_lock(
            hashtextextended(COALESCE(_row.tenant_id, '') || chr(31) || _row.dedupe_key, 7));
        SELECT j.id INTO _id
          FROM procrastinate_jobs AS j
         WHERE COALESCE(j.tenant_id, '') = COALESCE(_row.tenant_id, '')
           AND j.dedupe_key = _row.dedupe_key
           AND (j.status IN ('todo', 'doing')
                OR (_row.dedupe_for IS NOT NULL AND j.status = 'succeeded'
                    AND j.finished_at > clock_timestamp() - _row.dedupe_for))
         -- Ordered as queueing_jobs_dedupe_idx is (equal on its first two columns), so
         -- no plan can walk the primary key backwards past every job instead.
         ORDER BY COALESCE(j.tenant_id, ''), j.dedupe_key, j.id DESC
         LIMIT 1;
        _keyed_n := _keyed_n || _row.n::integer;
        IF _id IS NOT NULL THEN
            _keyed_ids := _keyed_ids || _id;
            _keyed_created := _keyed_created || false;
        ELSE
            INSERT INTO procrastinate_jobs
                   (queue_name, task_name, priority, args, scheduled_at, tenant_id, user_id,
                    max_attempts, dedupe_key)
            VALUES (_row.queue_name, _row.task_name, _row.priority, _row.args,
                    _row.scheduled_at, _row.tenant_id, _row.user_id, _row.max_attempts,
                    _row.dedupe_key)
            RETURNING procrastinate_jobs.id INTO _id;
            _keyed_ids := _keyed_ids || _id;
            _keyed_created := _keyed_created || true;
        END IF;
    END LOOP;

    RETURN QUERY
        WITH placed AS (
            SELECT p.n, _plain_ids[row_number() OVER (ORDER BY p.n)] AS id, true AS created
              FROM queueing_enqueue_rows_v1(p_jobs) AS p
             WHERE p.dedupe_key IS NULL
            UNION ALL
            SELECT k.n, k.id, k.created
              FROM unnest(_keyed_n, _keyed_ids, _keyed_created) AS k(n, id, created)
        )
        SELECT (to_jsonb(v) || jsonb_build_object('created', c.created))::text
          FROM placed AS c
          JOIN queueing_jobs AS v ON v.id = c.id
         ORDER BY c.n;
END;
$$;

--
-- Name: queueing_enqueue_v5(json); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_enqueue_v5(p_jobs json) RETURNS TABLE(ids bigint[], created_at timestamp with time zone)
    LANGUAGE plpgsql
    SET jit TO 'off'
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

--
-- Name: queueing_finish_v3(bigint, bigint[], integer[], public.queueing_outcome_v1[], jsonb[], jsonb[], timestamp with time zone[]); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_finish_v3(p_worker_id bigint, p_ids bigint[], p_attempts integer[], p_outcomes public.queueing_outcome_v1[], p_results jsonb[], p_errors jsonb[], p_retry_at timestamp with time zone[]) RETURNS TABLE(id bigint, status text)
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

--
-- Name: queueing_finish_v4(bigint, bigint[], integer[], public.queueing_outcome_v1[], jsonb[], jsonb[], timestamp with time zone[]); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_finish_v4(p_worker_id bigint, p_ids bigint[], p_attempts integer[], p_outcomes public.queueing_outcome_v1[], p_results jsonb[], p_errors jsonb[], p_retry_at timestamp with time zone[]) RETURNS TABLE(id bigint, status text)
    LANGUAGE plpgsql
    AS $$
#variable_conflict use_column
DECLARE
    _now timestamptz := clock_timestamp();
BEGIN
    RETURN QUERY
    WITH updated AS (
        -- Stamped here, as queueing_stamp_job_v1 would (setting updated_at skips it):
        -- finished_at when the job ends, cleared when it goes back to pending.
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
                               THEN j.attempts - 1 ELSE j.attempts END,
               finished_at = CASE WHEN queueing_outcome_status_v1(j.abort_requested, o.outcome)
                                       = 'todo' THEN NULL
                                  ELSE GREATEST(_now, j.created_at, j.started_at) END,
               updated_at = GREATEST(_now, j.updated_at, j.created_at, j.started_at)
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
    SELECT u.id, queueing_status_name_v1(u.status) FROM updated AS u;
END;
$$;

--
-- Name: queueing_finish_v5(bigint, json); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_finish_v5(p_worker_id bigint, p_outcomes json) RETURNS TABLE(id bigint, status text)
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

--
-- Name: queueing_job_json_v1(bigint); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_job_json_v1(p_job_id bigint) RETURNS text
    LANGUAGE sql STABLE
    AS $$
    SELECT to_jsonb(v)::text FROM queueing_jobs AS v WHERE v.id = p_job_id
$$;

--
-- Name: queueing_listen_job_changes_v1(interval); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_listen_job_changes_v1(p_wait interval) RETURNS boolean
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

--
-- Name: queueing_notify_jobs_changed_v2(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_notify_jobs_changed_v2() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    _ids bigint[];
BEGIN
    SELECT array_agg(n.id) INTO _ids FROM changed_jobs AS n;
    -- 350 ids of at most 20 characters each stay under NOTIFY's 8,000-byte payload.
    FOR _first IN 1 .. coalesce(cardinality(_ids), 0) BY 350 LOOP
        PERFORM pg_notify('queueing_jobs_changed_v2',
                          array_to_string(_ids[_first:_first + 349], ','));
    END LOOP;
    RETURN NULL;
END;
$$;

--
-- Name: queueing_notify_jobs_changed_v3(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_notify_jobs_changed_v3() RETURNS trigger
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

--
-- Name: queueing_notify_jobs_inserted_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_notify_jobs_inserted_v1() RETURNS trigger
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

--
-- Name: queueing_now_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_now_v1() RETURNS timestamp with time zone
    LANGUAGE sql STABLE
    AS $$
    SELECT now() + COALESCE((SELECT c.offset_by FROM queueing_clock AS c), interval '0')
$$;

--
-- Name: queueing_outcome_status_v1(boolean, public.queueing_outcome_v1); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_outcome_status_v1(p_abort_requested boolean, p_outcome public.queueing_outcome_v1) RETURNS public.procrastinate_job_status
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

--
-- Name: queueing_prune_v1(character varying, interval, integer, interval, integer); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_prune_v1(p_queue character varying, p_completed_age interval, p_completed_keep integer, p_failed_age interval, p_limit integer) RETURNS integer
    LANGUAGE plpgsql
    AS $$
DECLARE
    _deleted integer;
BEGIN
    WITH ranked AS (
        SELECT j.id, j.status, j.finished_at,
               row_number() OVER (PARTITION BY j.queue_name ORDER BY j.finished_at DESC, j.id DESC)
                   AS newest
          FROM procrastinate_jobs AS j
         WHERE j.status = 'succeeded' AND j.finished_at IS NOT NULL
           AND (p_queue IS NULL OR j.queue_name = p_queue)
    ), doomed AS (
        SELECT r.id FROM ranked AS r
         WHERE (p_completed_age IS NOT NULL AND r.finished_at < clock_timestamp() - p_completed_age)
            OR (p_completed_keep IS NOT NULL AND r.newest > p_completed_keep)
        UNION ALL
        SELECT j.id FROM procrastinate_jobs AS j
         WHERE j.status IN ('failed', 'cancelled', 'aborted')
           AND (p_queue IS NULL OR j.queue_name = p_queue)
           AND p_failed_age IS NOT NULL
           AND j.finished_at < clock_timestamp() - p_failed_age
    ), batch AS (
        SELECT j.id FROM procrastinate_jobs AS j
         WHERE j.id IN (SELECT d.id FROM doomed AS d)
           AND j.status IN ('succeeded', 'failed', 'cancelled', 'aborted')
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), deleted AS (
        DELETE FROM procrastinate_jobs AS j USING batch AS b WHERE j.id = b.id RETURNING j.id
    )
    SELECT count(*) INTO _deleted FROM deleted;
    RETURN _deleted;
END;
$$;

--
-- Name: queueing_prune_v2(character varying, interval, integer, interval, integer); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_prune_v2(p_queue character varying, p_completed_age interval, p_completed_keep integer, p_failed_age interval, p_limit integer) RETURNS integer
    LANGUAGE plpgsql
    SET enable_seqscan TO 'off'
    SET enable_bitmapscan TO 'off'
    SET jit TO 'off'
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

--
-- Name: queueing_register_worker_v1(text, integer); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_register_worker_v1(p_host text, p_pid integer) RETURNS TABLE(worker_id bigint)
    LANGUAGE sql
    AS $$
    INSERT INTO procrastinate_workers (host, pid) VALUES (p_host, p_pid)
    RETURNING procrastinate_workers.id
$$;

--
-- Name: queueing_release_jobs_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_release_jobs_v1() RETURNS trigger
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

--
-- Name: queueing_rescue_v3(interval, integer); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_rescue_v3(p_stalled_after interval, p_limit integer) RETURNS TABLE(id bigint, status text, queue_name character varying, task_name character varying)
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

--
-- Name: queueing_rescue_v4(interval, integer); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_rescue_v4(p_stalled_after interval, p_limit integer) RETURNS TABLE(id bigint, status text, queue_name character varying, task_name character varying)
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

--
-- Name: queueing_retry_v2(bigint, text, text); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_retry_v2(p_job_id bigint, p_actor text, p_tenant text) RETURNS TABLE(outcome text, job text)
    LANGUAGE plpgsql
    AS $$
DECLARE
    _job procrastinate_jobs;
BEGIN
    SELECT * INTO _job FROM procrastinate_jobs WHERE id = p_job_id FOR UPDATE;
    IF NOT FOUND OR (p_actor <> 'system' AND _job.tenant_id IS DISTINCT FROM p_tenant) THEN
        RETURN QUERY SELECT 'not_found'::text, NULL::text;
        RETURN;
    END IF;
    IF p_actor NOT IN ('system', 'admin') THEN
        RETURN QUERY SELECT 'not_allowed'::text, NULL::text;
        RETURN;
    END IF;
    IF _job.status NOT IN ('failed', 'cancelled', 'aborted') THEN
        RETURN QUERY SELECT 'not_retryable'::text, queueing_job_json_v1(p_job_id);
        RETURN;
    END IF;
    UPDATE procrastinate_jobs
       SET status = 'todo', scheduled_at = NULL, abort_requested = false, worker_id = NULL,
           result = NULL, progress = 0, progress_detail = NULL, cancelled_by = NULL,
           cancelled_at = NULL, max_attempts = GREATEST(max_attempts, attempts + 1)
     WHERE id = p_job_id;
    PERFORM queueing_wake_workers_v1(_job.queue_name, p_job_id);
    RETURN QUERY SELECT 'retried'::text, queueing_job_json_v1(p_job_id);
        RETURN;
END;
$$;

--
-- Name: queueing_run_now_v1(bigint); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_run_now_v1(p_job_id bigint) RETURNS SETOF public.queueing_jobs
    LANGUAGE plpgsql
    AS $$
DECLARE
    _queue character varying;
BEGIN
    UPDATE procrastinate_jobs SET scheduled_at = NULL
     WHERE procrastinate_jobs.id = p_job_id AND status = 'todo'
    RETURNING queue_name INTO _queue;
    IF _queue IS NOT NULL THEN
        PERFORM queueing_wake_workers_v1(_queue, p_job_id);
    END IF;
    RETURN QUERY SELECT * FROM queueing_jobs WHERE queueing_jobs.id = p_job_id AND _queue IS NOT NULL;
END;
$$;

--
-- Name: queueing_stamp_job_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_stamp_job_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
DECLARE
    _now timestamptz := clock_timestamp();
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NEW.status IN ('doing', 'aborting') THEN
            NEW.started_at := GREATEST(_now, NEW.created_at);
            NEW.finished_at := NULL;
        ELSIF NEW.status IN ('succeeded', 'failed', 'cancelled', 'aborted') THEN
            NEW.finished_at := GREATEST(_now, NEW.created_at, NEW.started_at);
        ELSE
            NEW.finished_at := NULL;
        END IF;
    END IF;
    -- updated_at is never older than any other timestamp of the row.
    NEW.updated_at := GREATEST(_now, OLD.updated_at, NEW.started_at, NEW.finished_at);
    RETURN NEW;
END;
$$;

--
-- Name: queueing_take_concurrency_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_take_concurrency_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.concurrency_key := NEW.args -> '_queueing_concurrency' ->> 'key';
    NEW.concurrency_limit := (NEW.args -> '_queueing_concurrency' ->> 'limit')::integer;
    NEW.args := NEW.args - '_queueing_concurrency';
    RETURN NEW;
END;
$$;

--
-- Name: queueing_take_trace_context_v1(); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_take_trace_context_v1() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.trace_context := NEW.args -> '_queueing_trace';
    NEW.args := NEW.args - '_queueing_trace';
    RETURN NEW;
END;
$$;

--
-- Name: queueing_wake_workers_v1(character varying, bigint); Type: FUNCTION; Schema: public
--

CREATE FUNCTION public.queueing_wake_workers_v1(p_queue character varying, p_job_id bigint) RETURNS void
    LANGUAGE plpgsql
    AS $$
DECLARE
    payload text := json_build_object('type', 'job_inserted', 'job_id', p_job_id)::text;
BEGIN
    PERFORM pg_notify('procrastinate_queue_v1#' || p_queue, payload);
    PERFORM pg_notify('procrastinate_any_queue_v1', payload);
END;
$$;

--
-- Name: procrastinate_events; Type: TABLE; Schema: public
--

CREATE TABLE public.procrastinate_events (
    id bigint NOT NULL,
    job_id bigint NOT NULL,
    type public.procrastinate_job_event_type,
    at timestamp with time zone DEFAULT now()
);

--
-- Name: procrastinate_events_id_seq; Type: SEQUENCE; Schema: public
--

CREATE SEQUENCE public.procrastinate_events_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: procrastinate_events_id_seq; Type: SEQUENCE OWNED BY; Schema: public
--

ALTER SEQUENCE public.procrastinate_events_id_seq OWNED BY public.procrastinate_events.id;

--
-- Name: procrastinate_jobs_id_seq; Type: SEQUENCE; Schema: public
--

CREATE SEQUENCE public.procrastinate_jobs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: procrastinate_jobs_id_seq; Type: SEQUENCE OWNED BY; Schema: public
--

ALTER SEQUENCE public.procrastinate_jobs_id_seq OWNED BY public.procrastinate_jobs.id;

--
-- Name: procrastinate_periodic_defers; Type: TABLE; Schema: public
--

CREATE TABLE public.procrastinate_periodic_defers (
    id bigint NOT NULL,
    task_name character varying(128) NOT NULL,
    defer_timestamp bigint,
    job_id bigint,
    periodic_id character varying(128) DEFAULT ''::character varying NOT NULL
);

--
-- Name: procrastinate_periodic_defers_id_seq; Type: SEQUENCE; Schema: public
--

CREATE SEQUENCE public.procrastinate_periodic_defers_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

--
-- Name: procrastinate_periodic_defers_id_seq; Type: SEQUENCE OWNED BY; Schema: public
--

ALTER SEQUENCE public.procrastinate_periodic_defers_id_seq OWNED BY public.procrastinate_periodic_defers.id;

--
-- Name: procrastinate_workers; Type: TABLE; Schema: public
--

CREATE TABLE public.procrastinate_workers (
    id bigint NOT NULL,
    last_heartbeat timestamp with time zone DEFAULT now() NOT NULL,
    host text,
    pid integer,
    started_at timestamp with time zone DEFAULT now()
);

--
-- Name: procrastinate_workers_id_seq; Type: SEQUENCE; Schema: public
--

ALTER TABLE public.procrastinate_workers ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.procrastinate_workers_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: queueing_api_jobs; Type: VIEW; Schema: public
--

CREATE VIEW public.queueing_api_jobs WITH (security_invoker='true') AS
 SELECT queueing_api_jobs_v1.id,
    queueing_api_jobs_v1.task_name,
    queueing_api_jobs_v1.queue,
    queueing_api_jobs_v1.tenant_id,
    queueing_api_jobs_v1.user_id,
    queueing_api_jobs_v1.status,
    queueing_api_jobs_v1.progress,
    queueing_api_jobs_v1.progress_detail,
    queueing_api_jobs_v1.result,
    queueing_api_jobs_v1.error,
    queueing_api_jobs_v1.attempts,
    queueing_api_jobs_v1.max_attempts,
    queueing_api_jobs_v1.created_at,
    queueing_api_jobs_v1.scheduled_at,
    queueing_api_jobs_v1.started_at,
    queueing_api_jobs_v1.finished_at,
    queueing_api_jobs_v1.cancel_requested,
    queueing_api_jobs_v1.cancelled_by,
    queueing_api_jobs_v1.cancelled_at
   FROM public.queueing_api_jobs_v1() queueing_api_jobs_v1(id, task_name, queue, tenant_id, user_id, status, progress, progress_detail, result, error, attempts, max_attempts, created_at, scheduled_at, started_at, finished_at, cancel_requested, cancelled_by, cancelled_at);

--
-- Name: queueing_attempts; Type: TABLE; Schema: public
--

CREATE TABLE public.queueing_attempts (
    id bigint NOT NULL,
    job_id bigint NOT NULL,
    attempt integer NOT NULL,
    worker_id bigint,
    started_at timestamp with time zone,
    finished_at timestamp with time zone NOT NULL,
    outcome text NOT NULL,
    error jsonb,
    CONSTRAINT queueing_attempts_outcome_check CHECK ((outcome = ANY (ARRAY['completed'::text, 'failed'::text, 'retry'::text, 'cancelled'::text, 'interrupted'::text, 'worker_lost'::text])))
);

ALTER TABLE ONLY public.queueing_attempts FORCE ROW LEVEL SECURITY;

--
-- Name: queueing_attempts_id_seq; Type: SEQUENCE; Schema: public
--

ALTER TABLE public.queueing_attempts ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY (
    SEQUENCE NAME public.queueing_attempts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1
);

--
-- Name: queueing_clock; Type: TABLE; Schema: public
--

CREATE TABLE public.queueing_clock (
    id boolean DEFAULT true NOT NULL,
    offset_by interval DEFAULT '00:00:00'::interval NOT NULL,
    CONSTRAINT queueing_clock_id_check CHECK (id)
);

--
-- Name: queueing_migrations; Type: TABLE; Schema: public
--

CREATE TABLE public.queueing_migrations (
    version integer NOT NULL,
    name text NOT NULL,
    applied_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL
);

--
-- Name: queueing_queues; Type: TABLE; Schema: public
--

CREATE TABLE public.queueing_queues (
    name text NOT NULL,
    paused boolean DEFAULT false NOT NULL,
    max_active integer,
    changed_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    CONSTRAINT queueing_queues_max_active_check CHECK ((max_active >= 1))
);

--
-- Name: queueing_schedule_ticks; Type: TABLE; Schema: public
--

CREATE TABLE public.queueing_schedule_ticks (
    schedule_name text NOT NULL,
    tick_at timestamp with time zone NOT NULL,
    job_id bigint NOT NULL
);

--
-- Name: queueing_schedules; Type: TABLE; Schema: public
--

CREATE TABLE public.queueing_schedules (
    name text NOT NULL,
    task_name text NOT NULL,
    cron text NOT NULL,
    timezone text NOT NULL,
    queue_name text NOT NULL,
    args jsonb DEFAULT '{}'::jsonb NOT NULL,
    registered_at timestamp with time zone NOT NULL,
    seen_at timestamp with time zone NOT NULL
);

--
-- Name: procrastinate_events id; Type: DEFAULT; Schema: public
--

ALTER TABLE ONLY public.procrastinate_events ALTER COLUMN id SET DEFAULT nextval('public.procrastinate_events_id_seq'::regclass);

--
-- Name: procrastinate_jobs id; Type: DEFAULT; Schema: public
--

ALTER TABLE ONLY public.procrastinate_jobs ALTER COLUMN id SET DEFAULT nextval('public.procrastinate_jobs_id_seq'::regclass);

--
-- Name: procrastinate_periodic_defers id; Type: DEFAULT; Schema: public
--

ALTER TABLE ONLY public.procrastinate_periodic_defers ALTER COLUMN id SET DEFAULT nextval('public.procrastinate_periodic_defers_id_seq'::regclass);

--
-- Name: procrastinate_events procrastinate_events_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.procrastinate_events
    ADD CONSTRAINT procrastinate_events_pkey PRIMARY KEY (id);

--
-- Name: procrastinate_jobs procrastinate_jobs_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.procrastinate_jobs
    ADD CONSTRAINT procrastinate_jobs_pkey PRIMARY KEY (id);

--
-- Name: procrastinate_periodic_defers procrastinate_periodic_defers_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.procrastinate_periodic_defers
    ADD CONSTRAINT procrastinate_periodic_defers_pkey PRIMARY KEY (id);

--
-- Name: procrastinate_periodic_defers procrastinate_periodic_defers_unique; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.procrastinate_periodic_defers
    ADD CONSTRAINT procrastinate_periodic_defers_unique UNIQUE (task_name, periodic_id, defer_timestamp);

--
-- Name: procrastinate_workers procrastinate_workers_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.procrastinate_workers
    ADD CONSTRAINT procrastinate_workers_pkey PRIMARY KEY (id);

--
-- Name: queueing_attempts queueing_attempts_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.queueing_attempts
    ADD CONSTRAINT queueing_attempts_pkey PRIMARY KEY (job_id, id);

--
-- Name: queueing_clock queueing_clock_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.queueing_clock
    ADD CONSTRAINT queueing_clock_pkey PRIMARY KEY (id);

--
-- Name: queueing_migrations queueing_migrations_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.queueing_migrations
    ADD CONSTRAINT queueing_migrations_pkey PRIMARY KEY (version);

--
-- Name: queueing_queues queueing_queues_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.queueing_queues
    ADD CONSTRAINT queueing_queues_pkey PRIMARY KEY (name);

--
-- Name: queueing_schedule_ticks queueing_schedule_ticks_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.queueing_schedule_ticks
    ADD CONSTRAINT queueing_schedule_ticks_pkey PRIMARY KEY (schedule_name, tick_at);

--
-- Name: queueing_schedules queueing_schedules_pkey; Type: CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.queueing_schedules
    ADD CONSTRAINT queueing_schedules_pkey PRIMARY KEY (name);

--
-- Name: idx_procrastinate_workers_last_heartbeat; Type: INDEX; Schema: public
--

CREATE INDEX idx_procrastinate_workers_last_heartbeat ON public.procrastinate_workers USING btree (last_heartbeat);

--
-- Name: procrastinate_events_job_id_fkey_v1; Type: INDEX; Schema: public
--

CREATE INDEX procrastinate_events_job_id_fkey_v1 ON public.procrastinate_events USING btree (job_id);

--
-- Name: procrastinate_jobs_lock_idx_v1; Type: INDEX; Schema: public
--

CREATE UNIQUE INDEX procrastinate_jobs_lock_idx_v1 ON public.procrastinate_jobs USING btree (lock) WHERE ((status = 'doing'::public.procrastinate_job_status) AND (lock IS NOT NULL));

--
-- Name: procrastinate_jobs_queueing_lock_idx_v1; Type: INDEX; Schema: public
--

CREATE UNIQUE INDEX procrastinate_jobs_queueing_lock_idx_v1 ON public.procrastinate_jobs USING btree (queueing_lock) WHERE ((status = 'todo'::public.procrastinate_job_status) AND (queueing_lock IS NOT NULL));

--
-- Name: procrastinate_periodic_defers_job_id_fkey_v1; Type: INDEX; Schema: public
--

CREATE INDEX procrastinate_periodic_defers_job_id_fkey_v1 ON public.procrastinate_periodic_defers USING btree (job_id);

--
-- Name: queueing_jobs_dedupe_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_dedupe_idx ON public.procrastinate_jobs USING btree (COALESCE(tenant_id, ''::text), dedupe_key, id DESC) WHERE (dedupe_key IS NOT NULL);

--
-- Name: queueing_jobs_dedupe_live_idx; Type: INDEX; Schema: public
--

CREATE UNIQUE INDEX queueing_jobs_dedupe_live_idx ON public.procrastinate_jobs USING btree (COALESCE(tenant_id, ''::text), dedupe_key) WHERE ((dedupe_key IS NOT NULL) AND (status = ANY (ARRAY['todo'::public.procrastinate_job_status, 'doing'::public.procrastinate_job_status])));

--
-- Name: queueing_jobs_doing_worker_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_doing_worker_idx ON public.procrastinate_jobs USING btree (worker_id) WHERE (status = 'doing'::public.procrastinate_job_status);

--
-- Name: queueing_jobs_due_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_due_idx ON public.procrastinate_jobs USING btree (scheduled_at) WHERE ((status = 'todo'::public.procrastinate_job_status) AND (scheduled_at IS NOT NULL));

--
-- Name: queueing_jobs_due_v2_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_due_v2_idx ON public.procrastinate_jobs USING btree (scheduled_at, id) WHERE ((status = 'todo'::public.procrastinate_job_status) AND (scheduled_at IS NOT NULL) AND (NOT run_alone) AND (concurrency_key IS NULL));

--
-- Name: queueing_jobs_finished_v2_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_finished_v2_idx ON public.procrastinate_jobs USING btree (queue_name, status, finished_at, id) WHERE (finished_at IS NOT NULL);

--
-- Name: queueing_jobs_id_lock_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_id_lock_idx ON public.procrastinate_jobs USING btree (id, lock) WHERE ((status = ANY (ARRAY['todo'::public.procrastinate_job_status, 'doing'::public.procrastinate_job_status])) AND (lock IS NOT NULL));

--
-- Name: queueing_jobs_key_active_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_key_active_idx ON public.procrastinate_jobs USING btree (concurrency_key) WHERE ((status = ANY (ARRAY['doing'::public.procrastinate_job_status, 'aborting'::public.procrastinate_job_status])) AND (concurrency_key IS NOT NULL));

--
-- Name: queueing_jobs_keyed_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_keyed_idx ON public.procrastinate_jobs USING btree (concurrency_key, priority DESC, id) WHERE ((status = 'todo'::public.procrastinate_job_status) AND (concurrency_key IS NOT NULL) AND (NOT run_alone));

--
-- Name: queueing_jobs_ready_queue_v2_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_ready_queue_v2_idx ON public.procrastinate_jobs USING btree (queue_name, priority DESC, id) WHERE ((status = 'todo'::public.procrastinate_job_status) AND (scheduled_at IS NULL) AND (NOT run_alone) AND (concurrency_key IS NULL));

--
-- Name: queueing_jobs_ready_v2_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_ready_v2_idx ON public.procrastinate_jobs USING btree (priority DESC, id) WHERE ((status = 'todo'::public.procrastinate_job_status) AND (scheduled_at IS NULL) AND (NOT run_alone) AND (concurrency_key IS NULL) AND (priority IS NOT NULL));

--
-- Name: queueing_jobs_run_alone_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_run_alone_idx ON public.procrastinate_jobs USING btree (priority DESC, id) WHERE ((status = 'todo'::public.procrastinate_job_status) AND run_alone);

--
-- Name: queueing_jobs_tenant_user_id_v2_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_jobs_tenant_user_id_v2_idx ON public.procrastinate_jobs USING btree (tenant_id, user_id, id DESC) WHERE (tenant_id IS NOT NULL);

--
-- Name: queueing_queues_restricted_idx; Type: INDEX; Schema: public
--

CREATE INDEX queueing_queues_restricted_idx ON public.queueing_queues USING btree (name) WHERE (paused OR (max_active IS NOT NULL));

--
-- Name: procrastinate_jobs procrastinate_jobs_notify_queue_job_aborted_v1; Type: TRIGGER; Schema: public
--

CREATE TRIGGER procrastinate_jobs_notify_queue_job_aborted_v1 AFTER UPDATE OF abort_requested ON public.procrastinate_jobs FOR EACH ROW WHEN (((old.abort_requested = false) AND (new.abort_requested = true) AND (new.status = 'doing'::public.procrastinate_job_status))) EXECUTE FUNCTION public.procrastinate_notify_queue_abort_job_v1();

--
-- Name: procrastinate_jobs procrastinate_trigger_abort_requested_events_v1; Type: TRIGGER; Schema: public
--

CREATE TRIGGER procrastinate_trigger_abort_requested_events_v1 AFTER UPDATE OF abort_requested ON public.procrastinate_jobs FOR EACH ROW WHEN ((new.abort_requested = true)) EXECUTE FUNCTION public.procrastinate_trigger_abort_requested_events_procedure_v1();

--
-- Name: procrastinate_jobs procrastinate_trigger_delete_jobs_v1; Type: TRIGGER; Schema: public
--

CREATE TRIGGER procrastinate_trigger_delete_jobs_v1 BEFORE DELETE ON public.procrastinate_jobs FOR EACH ROW EXECUTE FUNCTION public.procrastinate_unlink_periodic_defers_v1();

--
-- Name: procrastinate_jobs procrastinate_trigger_scheduled_events_v1; Type: TRIGGER; Schema: public
--

CREATE TRIGGER procrastinate_trigger_scheduled_events_v1 AFTER INSERT OR UPDATE ON public.procrastinate_jobs FOR EACH ROW WHEN (((new.scheduled_at IS NOT NULL) AND (new.status = 'todo'::public.procrastinate_job_status))) EXECUTE FUNCTION public.procrastinate_trigger_function_scheduled_events_v1();

--
-- Name: procrastinate_jobs queueing_delete_attempts_v1; Type: TRIGGER; Schema: public
--

CREATE TRIGGER queueing_delete_attempts_v1 AFTER DELETE ON public.procrastinate_jobs REFERENCING OLD TABLE AS deleted_jobs FOR EACH STATEMENT EXECUTE FUNCTION public.queueing_delete_attempts_v1();

--
-- Name: procrastinate_jobs queueing_notify_jobs_changed_v3; Type: TRIGGER; Schema: public
--

CREATE TRIGGER queueing_notify_jobs_changed_v3 AFTER UPDATE ON public.procrastinate_jobs REFERENCING NEW TABLE AS changed_jobs FOR EACH STATEMENT EXECUTE FUNCTION public.queueing_notify_jobs_changed_v3();

--
-- Name: procrastinate_jobs queueing_notify_jobs_inserted_v1; Type: TRIGGER; Schema: public
--

CREATE TRIGGER queueing_notify_jobs_inserted_v1 AFTER INSERT ON public.procrastinate_jobs REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION public.queueing_notify_jobs_inserted_v1();

--
-- Name: procrastinate_workers queueing_release_jobs_v1; Type: TRIGGER; Schema: public
--

CREATE TRIGGER queueing_release_jobs_v1 AFTER DELETE ON public.procrastinate_workers REFERENCING OLD TABLE AS deleted_workers FOR EACH STATEMENT EXECUTE FUNCTION public.queueing_release_jobs_v1();

--
-- Name: procrastinate_jobs queueing_stamp_job_v1; Type: TRIGGER; Schema: public
--

CREATE TRIGGER queueing_stamp_job_v1 BEFORE UPDATE ON public.procrastinate_jobs FOR EACH ROW WHEN ((NOT (old.updated_at IS DISTINCT FROM new.updated_at))) EXECUTE FUNCTION public.queueing_stamp_job_v1();

--
-- Name: procrastinate_jobs queueing_take_concurrency_v1; Type: TRIGGER; Schema: public
--

CREATE TRIGGER queueing_take_concurrency_v1 BEFORE INSERT ON public.procrastinate_jobs FOR EACH ROW WHEN ((new.args ? '_queueing_concurrency'::text)) EXECUTE FUNCTION public.queueing_take_concurrency_v1();

--
-- Name: procrastinate_jobs queueing_take_trace_context_v1; Type: TRIGGER; Schema: public
--

CREATE TRIGGER queueing_take_trace_context_v1 BEFORE INSERT ON public.procrastinate_jobs FOR EACH ROW WHEN ((new.args ? '_queueing_trace'::text)) EXECUTE FUNCTION public.queueing_take_trace_context_v1();

--
-- Name: procrastinate_jobs queueing_truncate_attempts_v1; Type: TRIGGER; Schema: public
--

CREATE TRIGGER queueing_truncate_attempts_v1 AFTER TRUNCATE ON public.procrastinate_jobs FOR EACH STATEMENT EXECUTE FUNCTION public.queueing_delete_attempts_v1();

--
-- Name: procrastinate_events procrastinate_events_job_id_fkey; Type: FK CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.procrastinate_events
    ADD CONSTRAINT procrastinate_events_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.procrastinate_jobs(id) ON DELETE CASCADE;

--
-- Name: procrastinate_periodic_defers procrastinate_periodic_defers_job_id_fkey; Type: FK CONSTRAINT; Schema: public
--

ALTER TABLE ONLY public.procrastinate_periodic_defers
    ADD CONSTRAINT procrastinate_periodic_defers_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.procrastinate_jobs(id);

--
-- Name: procrastinate_jobs; Type: ROW SECURITY; Schema: public
--

ALTER TABLE public.procrastinate_jobs ENABLE ROW LEVEL SECURITY;

--
-- Name: procrastinate_jobs queueing_actor_cancel; Type: POLICY; Schema: public
--

CREATE POLICY queueing_actor_cancel ON public.procrastinate_jobs FOR UPDATE TO queueing_api USING (public.queueing_actor_sees_v1(tenant_id, user_id)) WITH CHECK (public.queueing_actor_sees_v1(tenant_id, user_id));

--
-- Name: procrastinate_jobs queueing_actor_read; Type: POLICY; Schema: public
--

CREATE POLICY queueing_actor_read ON public.procrastinate_jobs FOR SELECT TO queueing_api USING (public.queueing_actor_sees_v1(tenant_id, user_id));

--
-- Name: queueing_attempts; Type: ROW SECURITY; Schema: public
--

ALTER TABLE public.queueing_attempts ENABLE ROW LEVEL SECURITY;

--
-- Name: procrastinate_jobs queueing_owner_all; Type: POLICY; Schema: public
--

CREATE POLICY queueing_owner_all ON public.procrastinate_jobs TO CURRENT_USER USING (true) WITH CHECK (true);

--
-- Name: queueing_attempts queueing_owner_all; Type: POLICY; Schema: public
--

CREATE POLICY queueing_owner_all ON public.queueing_attempts TO CURRENT_USER USING (true) WITH CHECK (true);

--
-- Name: TABLE procrastinate_jobs; Type: ACL; Schema: public
--

GRANT SELECT ON TABLE public.procrastinate_jobs TO queueing_api;

--
-- Name: COLUMN procrastinate_jobs.status; Type: ACL; Schema: public
--

GRANT UPDATE(status) ON TABLE public.procrastinate_jobs TO queueing_api;

--
-- Name: COLUMN procrastinate_jobs.abort_requested; Type: ACL; Schema: public
--

GRANT UPDATE(abort_requested) ON TABLE public.procrastinate_jobs TO queueing_api;

--
-- Name: COLUMN procrastinate_jobs.cancelled_by; Type: ACL; Schema: public
--

GRANT UPDATE(cancelled_by) ON TABLE public.procrastinate_jobs TO queueing_api;

--
-- Name: COLUMN procrastinate_jobs.cancelled_at; Type: ACL; Schema: public
--

GRANT UPDATE(cancelled_at) ON TABLE public.procrastinate_jobs TO queueing_api;

--
-- Name: FUNCTION queueing_api_cancel_v1(p_job_id bigint); Type: ACL; Schema: public; Owner: queueing_api
--

REVOKE ALL ON FUNCTION public.queueing_api_cancel_v1(p_job_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.queueing_api_cancel_v1(p_job_id bigint) TO queueing_app;

--
-- Name: FUNCTION queueing_api_jobs_v1(p_job_id bigint); Type: ACL; Schema: public; Owner: queueing_api
--

REVOKE ALL ON FUNCTION public.queueing_api_jobs_v1(p_job_id bigint) FROM PUBLIC;
GRANT ALL ON FUNCTION public.queueing_api_jobs_v1(p_job_id bigint) TO queueing_app;

--
-- Name: TABLE queueing_jobs; Type: ACL; Schema: public
--

GRANT SELECT ON TABLE public.queueing_jobs TO queueing_api;

--
-- Name: TABLE procrastinate_events; Type: ACL; Schema: public
--

GRANT INSERT ON TABLE public.procrastinate_events TO queueing_api;

--
-- Name: SEQUENCE procrastinate_events_id_seq; Type: ACL; Schema: public
--

GRANT USAGE ON SEQUENCE public.procrastinate_events_id_seq TO queueing_api;

--
-- Name: TABLE queueing_api_jobs; Type: ACL; Schema: public
--

GRANT SELECT ON TABLE public.queueing_api_jobs TO queueing_app;

--
-- The schema version: the migrations above, as `queueing db migrate` records them
--

INSERT INTO public.queueing_migrations (version, name) VALUES
    (1, 'job_status'),
    (2, 'drop_per_transition_events'),
    (3, 'statement_level_insert_notify'),
    (4, 'lifecycle'),
    (5, 'row_level_security'),
    (6, 'worker_contracts'),
    (7, 'observability'),
    (8, 'claim_paths'),
    (9, 'schedules_pause_limits'),
    (10, 'operators'),
    (11, 'drop_priority_index'),
    (12, 'lighter_status_changes'),
    (13, 'lighter_claims'),
    (14, 'lighter_enqueue'),
    (15, 'change_hints_on_demand');
