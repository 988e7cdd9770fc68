-- Runtime queries, one named block each, loaded once by queueing/sql.py.
-- Format: a line "-- name: <name>", an optional description comment, then the query.
-- Parameters use psycopg's %(name)s style. Versioned functions live in sql/migrations/.

-- name: ensure_migrations_table
-- The record of which of our migrations a database has.
CREATE TABLE IF NOT EXISTS queueing_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- name: lock_migrations
-- One migrator at a time (parallel test workers, several deploys).
SELECT pg_advisory_xact_lock(hashtext('queueing_migrate'));

-- name: schema_state
-- What of the queue's schema a database holds, read without failing when it holds none.
SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS has_procrastinate,
       to_regclass('queueing_migrations') IS NOT NULL AS has_migrations_table;

-- name: applied_migrations
SELECT version, name, applied_at FROM queueing_migrations ORDER BY version;

-- name: record_migration
INSERT INTO queueing_migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: enqueue_new
-- The fast path when no job of the batch has a dedupe key: one set-based insert that
-- returns the ids (in input order) and the creation time; the client builds the records
-- (queueing_enqueue_v4 handles keyed jobs one at a time, under their key's lock).
SELECT ids, created_at FROM queueing_enqueue_v5(%(jobs)s::json);

-- name: enqueue_plain
-- enqueue_new's insert that reads each record back (JSON, with "created"), for jobs
-- whose arguments jsonb would not give back as sent (ops.NewJob.args_exact).
SELECT job FROM queueing_enqueue_v3(%(jobs)s::json);

-- name: enqueue
-- One round trip for one job or many; returns their records (JSON, with "created") in
-- input order. Keyed jobs return the live job with their key instead of a second one.
SELECT job FROM queueing_enqueue_v4(%(jobs)s::json);

-- name: get_job
SELECT * FROM queueing_jobs WHERE id = %(id)s;

-- name: list_jobs
-- Newest first; keyset pagination: pass the last id seen as before_id. error_text: a
-- search in the error's type and message (plain text, no wildcards).
SELECT *
  FROM queueing_jobs
 WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
   AND (%(task)s::text IS NULL OR task_name = %(task)s)
   AND (%(queue)s::text IS NULL OR queue = %(queue)s)
   AND (%(tenant_id)s::text IS NULL OR tenant_id = %(tenant_id)s)
   AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
   AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
   AND (%(error_text)s::text IS NULL
        OR strpos(lower(concat_ws(' ', error->>'type', error->>'message')),
                  lower(%(error_text)s)) > 0)
   AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s)
 ORDER BY id DESC
 LIMIT %(limit)s;

-- name: stats
-- Job counts per queue and status.
SELECT queue, status, count(*) AS count
  FROM queueing_jobs
 GROUP BY queue, status
 ORDER BY queue, status;

-- name: cancel_job
-- On behalf of an actor; returns what happened (see queueing_cancel_v3).
SELECT outcome, job
  FROM queueing_cancel_v3(%(id)s, %(actor)s, %(tenant)s, %(user)s, %(operator)s);

-- name: retry_job
SELECT outcome, job FROM queueing_retry_v2(%(id)s, %(actor)s, %(tenant)s);

-- name: job_attempts
-- A job's attempt history, oldest first. run numbers the rows 1, 2, ...: an interrupted
-- attempt gives its number back (it does not count against max_attempts), so the next
-- row repeats it; the run tells them apart.
SELECT row_number() OVER (ORDER BY id)::integer AS run,
       attempt, worker_id, started_at, finished_at, outcome, error
  FROM queueing_attempts WHERE job_id = %(id)s ORDER BY id;

-- name: rescue_stalled
-- One statement, run autocommitted: the maintenance lock it takes inside ends with it.
-- queue_name and task_name label the rescued-jobs metric.
SELECT id, status, queue_name, task_name
  FROM queueing_rescue_v4(make_interval(secs => %(stalled_after)s), %(limit)s);

-- name: prune_jobs
SELECT queueing_prune_v2(
    %(queue)s, make_interval(secs => %(completed_age)s), %(completed_keep)s,
    make_interval(secs => %(failed_age)s), %(limit)s) AS deleted;

-- name: try_maintenance_lock
-- One worker at a time runs a maintenance service: the holder of this transaction lock.
SELECT pg_try_advisory_xact_lock(hashtext('queueing_maintenance'), %(service)s) AS acquired;

-- name: run_job_now
SELECT * FROM queueing_run_now_v1(%(id)s);

-- name: claim_jobs
-- idle: the worker runs nothing, so it may take a job that must run alone. due_at: when
-- the job fell due (the pickup latency metric); trace_context: the enqueuer's span;
-- schedule_tick: the tick of a periodic job; limited: a concurrency limit counted it (its
-- outcome's commit frees a slot). Paused queues, queue limits and per-key
-- limits are decided inside (queueing_claim_v8: migrations 0009, 0012, 0013, 0014).
SELECT id, task_name, queue_name, args, attempts, max_attempts, tenant_id, user_id, run_alone,
       due_at, trace_context, schedule_tick, limited
  FROM queueing_claim_v8(%(queues)s::character varying[], %(worker_id)s, %(limit)s, %(idle)s);

-- name: claimed_by_worker
-- The jobs the database holds as claimed by this worker (columns as claim_jobs returns
-- them). A claim whose reply was lost with its connection committed all the same: the
-- worker compares this with what it runs and gives back the rest (loop.py).
SELECT id, task_name, queue_name, args, attempts, max_attempts, tenant_id, user_id, run_alone
  FROM procrastinate_jobs
 WHERE worker_id = %(worker_id)s AND status = 'doing';

-- name: finish_jobs
-- outcomes: a JSON array, one object per attempt (queueing.worker.finisher.outcomes_json;
-- its "outcome": queueing.worker.outcome.OutcomeKind values, the type refuses any other).
SELECT id, status FROM queueing_finish_v5(%(worker_id)s, %(outcomes)s::json);

-- name: set_progress
-- Fenced by attempt: a stale attempt's progress report changes nothing.
UPDATE procrastinate_jobs
   SET progress = %(progress)s, progress_detail = %(detail)s
 WHERE id = %(id)s AND status = 'doing' AND attempts = %(attempt)s
RETURNING id;

-- name: cancel_requested
-- Which of these running jobs have been asked to stop.
SELECT id FROM procrastinate_jobs
 WHERE id = ANY(%(ids)s::bigint[]) AND abort_requested;

-- name: next_due_in
-- Seconds until the earliest delayed job of these queues is due (NULL: none waiting).
SELECT EXTRACT(EPOCH FROM min(scheduled_at) - now())::float8 AS seconds
  FROM procrastinate_jobs
 WHERE status = 'todo' AND scheduled_at > now()
   AND (%(queues)s::character varying[] IS NULL OR queue_name = ANY(%(queues)s::character varying[]));

-- name: register_worker
-- The worker's row, with the host and process id it runs as (migration 0010).
SELECT worker_id FROM queueing_register_worker_v1(%(host)s, %(pid)s);

-- name: unregister_worker
SELECT procrastinate_unregister_worker_v1(%(worker_id)s);

-- name: listen_job_changes
-- LISTEN for job-change hints, registered so that they are sent (migration 0015); false
-- if registering would wait longer than %(wait)s (an interval; NULL: no limit).
SELECT queueing_listen_job_changes_v1(%(wait)s::interval) AS registered;

-- name: listen_channel
-- {channel} is filled in as a quoted identifier (psycopg.sql.Identifier), never as text.
LISTEN {channel};

-- name: database_exists
SELECT 1 FROM pg_database WHERE datname = %(name)s;

-- name: embedded_max_connections
-- The embedded server's connection limit as configured, and the sessions it has besides
-- the one asking (a restart to apply a new limit would end theirs).
SELECT current_setting('max_connections')::int AS max_connections,
       (SELECT count(*) FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()) AS others;

-- name: embedded_set_max_connections
-- {value} is a literal; takes effect at the server's next start.
ALTER SYSTEM SET max_connections = {value};

-- name: embedded_reload_config
-- Rereads the configuration files (pg_settings.pending_restart then shows a new limit).
SELECT pg_reload_conf();

-- name: create_database
-- {name} is a quoted identifier.
CREATE DATABASE {name};

-- name: create_database_from_template
-- A migrated template cloned per test session / xdist worker.
CREATE DATABASE {name} TEMPLATE {template};

-- name: drop_database
DROP DATABASE IF EXISTS {name} WITH (FORCE);

-- name: reset_jobs
-- Test isolation: empty the queue between tests (cheaper than a new database).
TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_periodic_defers,
         procrastinate_workers RESTART IDENTITY CASCADE;

-- name: lock_template
-- Serialises the creation of the migrated test template across xdist workers.
SELECT pg_advisory_lock(hashtext('queueing_test_template'));

-- name: unlock_template
SELECT pg_advisory_unlock(hashtext('queueing_test_template'));

-- name: rename_database
ALTER DATABASE {old} RENAME TO {new};

-- name: heartbeat_alive
-- The worker's heartbeat, returning its row: none means the worker was rescued or
-- forgotten (its jobs given back) and must register again before claiming.
UPDATE procrastinate_workers SET last_heartbeat = now() WHERE id = %(worker_id)s RETURNING id;

-- name: finished_queues
-- The queues that hold finished jobs (retention applies per queue), by skip scan of
-- queueing_jobs_finished_v2_idx: one index probe per queue, not one row per job.
WITH RECURSIVE q AS (
    (SELECT j.queue_name FROM procrastinate_jobs AS j
      WHERE j.finished_at IS NOT NULL ORDER BY j.queue_name LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue_name FROM procrastinate_jobs AS j
             WHERE j.finished_at IS NOT NULL AND j.queue_name > q.queue_name
             ORDER BY j.queue_name LIMIT 1)
      FROM q WHERE q.queue_name IS NOT NULL
)
SELECT queue_name FROM q WHERE queue_name IS NOT NULL;

-- name: testing_reset
-- Test isolation (queueing.testing): empty every queue table between tests. DELETE, not
-- TRUNCATE: on these tiny tables it costs ~1 ms where TRUNCATE (new files for five
-- tables and their indexes) costs ~100 ms. Ids keep counting up across tests.
-- Several statements, no parameters: psycopg sends them as one simple query.
DELETE FROM procrastinate_events;
DELETE FROM procrastinate_periodic_defers;
DELETE FROM queueing_attempts;
DELETE FROM procrastinate_jobs;
DELETE FROM procrastinate_workers;
DELETE FROM queueing_schedule_ticks;
DELETE FROM queueing_schedules;
DELETE FROM queueing_clock;
DELETE FROM queueing_queues;

-- name: testing_worker_runs
-- What the given worker registrations ran (queueing.testing drain): one row per finished
-- attempt, in the order they were recorded.
SELECT a.job_id, j.task_name, a.attempt, a.outcome, a.worker_id, a.error
  FROM queueing_attempts AS a
  JOIN procrastinate_jobs AS j ON j.id = a.job_id
 WHERE a.worker_id = ANY(%(worker_ids)s::bigint[])
 ORDER BY a.id;

-- name: testing_advance_clock
-- Tests move the queue's clock forward by %(seconds)s instead of waiting: every job and
-- attempt gets that much older, pending jobs waiting for a run time (delay, retry
-- backoff) fall due that much sooner, and the workers of the jobs now due are woken.
-- Returns the jobs that became due. The queue clock (queueing_now_v1, which schedules
-- read) moves forward by as much.
WITH clock AS (
    INSERT INTO queueing_clock (offset_by) VALUES (make_interval(secs => %(seconds)s))
    ON CONFLICT (id) DO UPDATE SET offset_by = queueing_clock.offset_by + EXCLUDED.offset_by
), attempts AS (
    UPDATE queueing_attempts
       SET started_at = started_at - make_interval(secs => %(seconds)s),
           finished_at = finished_at - make_interval(secs => %(seconds)s)
), moved AS (
    UPDATE procrastinate_jobs
       SET scheduled_at = scheduled_at - make_interval(secs => %(seconds)s),
           created_at = created_at - make_interval(secs => %(seconds)s),
           started_at = started_at - make_interval(secs => %(seconds)s),
           finished_at = finished_at - make_interval(secs => %(seconds)s)
    RETURNING id, queue_name, status, scheduled_at
)
SELECT m.id, queueing_wake_workers_v1(m.queue_name, m.id)::text AS woken
  FROM moved AS m
 WHERE m.status = 'todo' AND m.scheduled_at IS NOT NULL AND m.scheduled_at <= now()
   AND m.scheduled_at + make_interval(secs => %(seconds)s) > now()
 ORDER BY m.id;

-- name: set_actor
-- Row-level security (migration 0005): who the rest of this transaction acts for. The
-- third argument `true` makes each setting end with the transaction, so a pooled
-- connection never carries one request's actor into the next.
SELECT set_config('queueing.actor', %(kind)s, true),
       set_config('queueing.tenant_id', %(tenant_id)s, true),
       set_config('queueing.user_id', %(user_id)s, true);

-- name: prune_jobs_exclusive
-- prune_jobs for the worker's pruner: the maintenance lock and the batch in one statement,
-- run autocommitted, so the lock ends with it whatever the client does next (a worker
-- frozen between a lock and its COMMIT would stop every worker's pruning). deleted is
-- NULL when another process holds the lock (CASE evaluates THEN only when WHEN holds).
SELECT CASE WHEN pg_try_advisory_xact_lock(hashtext('queueing_maintenance'), %(service)s)
            THEN queueing_prune_v2(
                %(queue)s, make_interval(secs => %(completed_age)s), %(completed_keep)s,
                make_interval(secs => %(failed_age)s), %(limit)s)
       END AS deleted;

-- name: other_templates
-- Test template databases (queueing.testing.databases) of every schema but the current
-- one, and leftovers of interrupted builds: the plugin drops those no session uses.
-- In the pattern, a backslash makes "_" literal for LIKE, and psycopg reads the doubled
-- percent sign as one.
SELECT datname FROM pg_database
 WHERE datname LIKE 'queueing\_template\_%%' AND datname <> %(current)s
 ORDER BY datname;

-- name: drop_unused_database
-- Without FORCE: refused (object_in_use) while any session is connected to it, as one
-- cloning a template is. {name} is a quoted identifier.
DROP DATABASE IF EXISTS {name};

-- name: queue_metrics
-- The queue-level gauges (queueing metrics serve), one statement per scrape: jobs per
-- queue and status, and per queue the age of the oldest pending job that is due (a job
-- delayed into the future is not late). One pass over the job table, finished jobs
-- included (retention bounds them); the server caches the answer for a few seconds so
-- scrapers cannot multiply it. doing and aborting both count as active.
SELECT queue_name AS queue,
       queueing_status_name_v1(status) AS status,
       count(*) AS jobs,
       EXTRACT(EPOCH FROM now() - min(GREATEST(scheduled_at, created_at))
                             FILTER (WHERE status = 'todo'
                                       AND (scheduled_at IS NULL OR scheduled_at <= now())
                             ))::float8 AS oldest_due_age_seconds
  FROM procrastinate_jobs
 GROUP BY 1, 2
 ORDER BY 1, 2;

-- =====================================================================================
-- Periodic jobs (queueing.schedules, queueing/worker/scheduler.py; migration 0009).
-- Times are the queue clock's (queueing_now_v1: now() in production).
-- =====================================================================================

-- name: register_schedules
-- A starting worker's schedules (JSON array of objects): new ones are first seen now, so
-- no tick before this instant is run; known ones take the code's current definition.
INSERT INTO queueing_schedules
       (name, task_name, cron, timezone, queue_name, args, registered_at, seen_at)
SELECT s.name, s.task_name, s.cron, s.timezone, s.queue_name, s.args,
       queueing_now_v1(), queueing_now_v1()
  FROM json_to_recordset(%(schedules)s::json)
       AS s(name text, task_name text, cron text, timezone text, queue_name text, args jsonb)
ON CONFLICT (name) DO UPDATE
   SET task_name = EXCLUDED.task_name, cron = EXCLUDED.cron, timezone = EXCLUDED.timezone,
       queue_name = EXCLUDED.queue_name, args = EXCLUDED.args, seen_at = EXCLUDED.seen_at;

-- name: schedule_state
-- The scheduler's view, once a round: the queue clock's now, and per registered schedule
-- of these names the instant after which its ticks are due (its last tick run, else when
-- it was first seen). A name missing from the rows is not registered (yet, or any more).
SELECT s.name, queueing_now_v1() AS now,
       GREATEST(s.registered_at, t.tick_at) AS due_after
  FROM queueing_schedules AS s
  LEFT JOIN LATERAL (SELECT k.tick_at FROM queueing_schedule_ticks AS k
                      WHERE k.schedule_name = s.name
                      ORDER BY k.tick_at DESC LIMIT 1) AS t ON true
 WHERE s.name = ANY(%(names)s::text[]);

-- name: fire_schedule_ticks
-- Run the due ticks (JSON array, one object per tick), one job each, in one statement:
-- the primary key (schedule_name, tick_at) lets one insert of a tick through, whichever
-- worker's, and the job is inserted only for the tick rows this statement inserted, so
-- a tick has one job whatever the number of workers. A tick older than the schedule's
-- last one run is not inserted (a scheduler whose view is a round old). The job is due at
-- its tick (in the real clock: the queue clock's offset taken off). Tick rows more than a
-- day older than a new tick of their schedule are deleted (the newest always stays).
-- Returns the ticks this statement ran.
WITH due AS (
    SELECT d.*
      FROM json_to_recordset(%(ticks)s::json)
           AS d(schedule_name text, tick_at timestamptz, task_name character varying,
                queue_name character varying, priority integer, args jsonb,
                max_attempts integer)
), ticked AS (
    INSERT INTO queueing_schedule_ticks (schedule_name, tick_at, job_id)
    SELECT d.schedule_name, d.tick_at, nextval(pg_get_serial_sequence('procrastinate_jobs', 'id'))
      FROM due AS d
     WHERE d.tick_at > COALESCE((SELECT max(k.tick_at) FROM queueing_schedule_ticks AS k
                                  WHERE k.schedule_name = d.schedule_name), '-infinity')
    ON CONFLICT DO NOTHING
    RETURNING schedule_name, tick_at, job_id
), jobs AS (
    INSERT INTO procrastinate_jobs
           (id, queue_name, task_name, priority, args, scheduled_at, max_attempts, schedule_tick)
    SELECT t.job_id, d.queue_name, d.task_name, d.priority, d.args,
           t.tick_at - (queueing_now_v1() - now()), d.max_attempts, t.tick_at
      FROM ticked AS t
      JOIN due AS d ON d.schedule_name = t.schedule_name AND d.tick_at = t.tick_at
), pruned AS (
    DELETE FROM queueing_schedule_ticks AS k
     USING ticked AS t
     WHERE k.schedule_name = t.schedule_name AND k.tick_at < t.tick_at - interval '1 day'
)
SELECT t.schedule_name, t.tick_at, t.job_id FROM ticked AS t ORDER BY t.tick_at, t.schedule_name;

-- name: queue_clock_now
SELECT queueing_now_v1() AS now;

-- name: list_schedules
-- Every registered schedule with its last tick run and that tick's job (NULL status:
-- the job was deleted by retention).
SELECT s.name, s.task_name, s.cron, s.timezone, s.queue_name AS queue, s.args,
       s.registered_at, s.seen_at, t.tick_at AS last_tick_at, t.job_id AS last_job_id,
       queueing_status_name_v1(j.status) AS last_job_status
  FROM queueing_schedules AS s
  LEFT JOIN LATERAL (SELECT k.tick_at, k.job_id FROM queueing_schedule_ticks AS k
                      WHERE k.schedule_name = s.name
                      ORDER BY k.tick_at DESC LIMIT 1) AS t ON true
  LEFT JOIN procrastinate_jobs AS j ON j.id = t.job_id
 ORDER BY s.name;

-- =====================================================================================
-- Queue settings: pause, resume, max_active (queueing.queues; migration 0009).
-- =====================================================================================

-- name: list_queues
-- Per queue: jobs due now (pending), running (active), waiting for a later run time
-- (delayed), failed in the last hour, the age of the oldest job due, and its settings.
-- One pass over the job table (finished jobs included: retention bounds them), joined
-- to the settings of queues that may hold no job.
WITH counts AS (
    SELECT j.queue_name AS name,
           count(*) FILTER (WHERE j.status = 'todo'
                              AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())) AS pending,
           count(*) FILTER (WHERE j.status IN ('doing', 'aborting')) AS active,
           count(*) FILTER (WHERE j.status = 'todo' AND j.scheduled_at > now()) AS delayed,
           count(*) FILTER (WHERE j.status = 'failed'
                              AND j.finished_at > now() - interval '1 hour') AS failed_last_hour,
           EXTRACT(EPOCH FROM now() - min(GREATEST(j.scheduled_at, j.created_at))
                   FILTER (WHERE j.status = 'todo'
                             AND (j.scheduled_at IS NULL OR j.scheduled_at <= now()))
                  )::float8 AS oldest_pending_age_seconds
      FROM procrastinate_jobs AS j
     GROUP BY j.queue_name
)
SELECT COALESCE(c.name, q.name) AS name,
       COALESCE(c.pending, 0) AS pending, COALESCE(c.active, 0) AS active,
       COALESCE(c.delayed, 0) AS delayed, COALESCE(c.failed_last_hour, 0) AS failed_last_hour,
       c.oldest_pending_age_seconds,
       COALESCE(q.paused, false) AS paused, q.max_active
  FROM counts AS c
  FULL JOIN queueing_queues AS q ON q.name = c.name
 WHERE %(queue)s::text IS NULL OR COALESCE(c.name, q.name) = %(queue)s
 ORDER BY 1;

-- name: set_queue_settings
-- Pause or resume a queue (paused NULL: unchanged) and set its max_active (set_limit
-- false: unchanged; max_active NULL with set_limit: no limit), if the queue is known: a
-- job, a setting or (declared) the caller's tasks use it. No row: unknown, nothing
-- written. A queue left unpaused wakes its workers in the same commit (the hint of a
-- job insert: they claim at once instead of at their next poll).
WITH known AS (
    SELECT %(queue)s::text AS name
     WHERE %(declared)s::boolean
        OR EXISTS (SELECT 1 FROM queueing_queues AS q WHERE q.name = %(queue)s::text)
        OR EXISTS (SELECT 1 FROM procrastinate_jobs AS j WHERE j.queue_name = %(queue)s::text)
), changed AS (
    INSERT INTO queueing_queues AS q (name, paused, max_active)
    SELECT k.name, COALESCE(%(paused)s::boolean, false), %(max_active)s::integer FROM known AS k
    ON CONFLICT (name) DO UPDATE
       SET paused = COALESCE(%(paused)s::boolean, q.paused),
           max_active = CASE WHEN %(set_limit)s::boolean THEN EXCLUDED.max_active ELSE q.max_active END,
           changed_at = clock_timestamp()
    RETURNING q.name, q.paused
)
SELECT c.name, c.paused,
       CASE WHEN NOT c.paused THEN queueing_wake_workers_v1(c.name, 0)::text END AS woken
  FROM changed AS c;

-- ---------------------------------------------------------------------------------------
-- The worker's vacuum service (queueing/worker/vacuumer.py).

-- name: vacuum_due
-- Whether the jobs table holds at least min_dead dead rows and neither VACUUM nor
-- autovacuum has run on it for `every` seconds. The statistics lag by up to a second:
-- a vacuum now and then too many or too few is harmless (VACUUM SKIP_LOCKED).
SELECT n_dead_tup >= %(min_dead)s
       AND COALESCE(GREATEST(last_vacuum, last_autovacuum), '-infinity')
           < now() - make_interval(secs => %(every)s) AS due
  FROM pg_stat_user_tables
 WHERE relid = 'procrastinate_jobs'::regclass;

-- name: vacuum_queue_tables
-- Not in a transaction (VACUUM refuses one). SKIP_LOCKED: a vacuum of these tables that
-- another worker runs already makes this one return at once instead of queueing behind it.
VACUUM (SKIP_LOCKED) procrastinate_jobs, queueing_attempts;

-- dashboard ---------------------------------------------------------------------------
-- The web dashboard (queueing/web/): what the operator pages read, and the end-user
-- view's reads and cancels through the row-level-security API (migration 0005).

-- The overview's counts and settings per queue are list_queues' (the library's).
-- name: dashboard_throughput
-- Jobs finished per queue in each 5-minute slot of the last hour; slot 1 is the most
-- recent, 12 the oldest (slots with none are absent). With list_queues, one pass over
-- the job table each (retention bounds it): ~60 ms and ~35 ms at 100,000 jobs on a
-- 2-core dev machine, so the pages refresh at most once a second per viewer
-- (static/dashboard.js).
SELECT queue_name AS queue,
       width_bucket(EXTRACT(EPOCH FROM now() - finished_at)::float8, 0, 3600, 12) AS slot,
       count(*) AS finished
  FROM procrastinate_jobs
 WHERE finished_at >= now() - interval '1 hour'
 GROUP BY 1, 2;

-- name: dashboard_count_jobs
-- How many jobs list_jobs' filters match (all pages), and the newest one's id: a
-- bulk action touches the jobs counted, none enqueued after its confirmation.
SELECT count(*) AS total, max(id) AS newest_id
  FROM queueing_jobs
 WHERE (%(statuses)s::text[] IS NULL OR status = ANY(%(statuses)s::text[]))
   AND (%(task)s::text IS NULL OR task_name = %(task)s)
   AND (%(queue)s::text IS NULL OR queue = %(queue)s)
   AND (%(tenant_id)s::text IS NULL OR tenant_id = %(tenant_id)s)
   AND (%(user_id)s::text IS NULL OR user_id = %(user_id)s)
   AND (%(created_after)s::timestamptz IS NULL OR created_at >= %(created_after)s)
   AND (%(created_before)s::timestamptz IS NULL OR created_at < %(created_before)s)
   AND (%(error_text)s::text IS NULL
        OR strpos(lower(concat_ws(' ', error->>'type', error->>'message')),
                  lower(%(error_text)s)) > 0);

-- name: dashboard_workers
-- The registered workers, with the jobs each is running now.
SELECT w.id, w.host, w.pid, w.started_at, w.last_heartbeat,
       EXTRACT(EPOCH FROM now() - w.last_heartbeat)::float8 AS heartbeat_age_seconds,
       COALESCE(array_agg(j.id ORDER BY j.id) FILTER (WHERE j.id IS NOT NULL),
                '{}') AS running_job_ids
  FROM procrastinate_workers AS w
  LEFT JOIN procrastinate_jobs AS j
         ON j.worker_id = w.id AND j.status IN ('doing', 'aborting')
 GROUP BY w.id
 ORDER BY w.id;

-- name: dashboard_api_jobs
-- The end-user view: the actor's jobs (set_actor first, in the same transaction), or
-- one of them with id; newest first; keyset pagination on before_id.
SELECT *
  FROM queueing_api_jobs_v1(%(id)s)
 WHERE %(before_id)s::bigint IS NULL OR id < %(before_id)s
 ORDER BY id DESC
 LIMIT %(limit)s;

-- name: dashboard_api_visible
-- Which of these job ids the actor may see: the end-user event stream passes on a
-- change hint only for those (set_actor first).
SELECT id FROM queueing_api_jobs_v1() WHERE id = ANY(%(ids)s::bigint[]);

-- name: dashboard_api_cancel
-- The end-user view's cancel, with the actor's rights (set_actor first).
SELECT queueing_api_cancel_v1(%(id)s) AS outcome;

-- ---------------------------------------------------------------------------
-- Connections per worker (tests/test_pgbouncer.py, docs/pooling.md)
-- ---------------------------------------------------------------------------

-- name: test_connections_of
-- The server connections opened under one application_name (a worker whose URL sets
-- it), each by the last statement it ran.
SELECT query FROM pg_stat_activity WHERE application_name = %(application)s ORDER BY query;
