-- The benchmark harness's own queries (loaded by bench/sql_blocks.py). The systems'
-- queries are their own; these only clear, check and describe the tables between runs.

-- name: queueing_clear
TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_workers, queueing_attempts
    RESTART IDENTITY CASCADE;

-- name: queueing_unfinished
-- The measured jobs (task noop or stamp in queue default) not finished yet.
SELECT count(*) FROM procrastinate_jobs
 WHERE queue_name = 'default' AND task_name IN ('noop', 'stamp')
   AND status IN ('todo', 'doing');

-- name: queueing_analyze
ANALYZE procrastinate_jobs;

-- name: procrastinate_clear
TRUNCATE procrastinate_jobs, procrastinate_events, procrastinate_workers RESTART IDENTITY CASCADE;

-- name: procrastinate_unfinished
SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing');

-- name: procrastinate_analyze
ANALYZE procrastinate_jobs;

-- name: pgqueuer_clear
TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics RESTART IDENTITY;

-- name: pgqueuer_unfinished
-- PgQueuer deletes a job from its queue table when it finishes (and logs it).
SELECT count(*) FROM pgqueuer;

-- name: pgqueuer_analyze
ANALYZE pgqueuer;

-- name: vacuum_analyze_jobs
-- As autovacuum would have done on a table that filled over a day.
VACUUM (ANALYZE) procrastinate_jobs;

-- name: server_facts
SELECT version() AS version,
       current_setting('server_version') AS server_version,
       (SELECT json_object_agg(name, current_setting(name))
          FROM pg_settings
         WHERE name IN ('shared_buffers', 'work_mem', 'synchronous_commit', 'fsync',
                        'max_connections', 'wal_level', 'max_wal_size', 'checkpoint_timeout',
                        'autovacuum', 'autovacuum_naptime', 'autovacuum_vacuum_scale_factor',
                        'autovacuum_vacuum_insert_scale_factor', 'autovacuum_vacuum_cost_limit',
                        'random_page_cost', 'effective_io_concurrency', 'jit',
                        'shared_preload_libraries')) AS settings;

-- name: table_sizes
-- Table, index and TOAST sizes, dead rows and the last (auto)vacuum of the job tables.
SELECT c.relname AS table_name,
       pg_relation_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       pg_total_relation_size(c.oid) AS total_bytes,
       s.n_live_tup AS live_rows, s.n_dead_tup AS dead_rows,
       s.autovacuum_count, s.vacuum_count,
       s.last_autovacuum::text AS last_autovacuum
  FROM pg_class AS c JOIN pg_stat_user_tables AS s ON s.relid = c.oid
 WHERE c.relname IN ('procrastinate_jobs', 'procrastinate_events', 'procrastinate_workers',
                     'queueing_attempts', 'pgqueuer', 'pgqueuer_log')
 ORDER BY c.relname;

-- name: index_sizes
SELECT indexrelname AS index_name, pg_relation_size(indexrelid) AS bytes
  FROM pg_stat_user_indexes
 WHERE relname IN ('procrastinate_jobs', 'queueing_attempts')
 ORDER BY indexrelname;

-- name: explain_setup
-- auto_explain shows the plans of the statements inside the claim function (a plain
-- EXPLAIN of a function call shows one Function Scan); its output comes back as LOG
-- messages. Superuser only, this session only.
LOAD 'auto_explain';

-- name: explain_settings
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_nested_statements = on;
SET client_min_messages = log;

-- name: backends
-- Client connections to this database (the harness subtracts its own).
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend';

-- name: activity_sample
-- bench/profile.py: what every other client backend of this database is doing now.
SELECT pid, state, wait_event_type, wait_event, query
  FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend'
   AND pid <> pg_backend_pid();

-- name: pgss_loaded
SELECT 'pg_stat_statements' = ANY(string_to_array(
    replace(current_setting('shared_preload_libraries'), ' ', ''), ','));

-- name: pgss_create
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

-- name: pgss_reset
SELECT pg_stat_statements_reset();

-- name: pgss_top
-- The statements of this database by total execution time.
SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
       round(mean_exec_time::numeric, 3) AS mean_ms, rows,
       left(regexp_replace(query, '\s+', ' ', 'g'), 110) AS query
  FROM pg_stat_statements
 WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
 ORDER BY total_exec_time DESC
 LIMIT 15;

-- name: lock_waits
-- bench/profile.py: the heavyweight locks this database's backends wait for now, and on
-- what (an "object" lock on pg_database with objid 0 is NOTIFY's commit-time queue lock).
SELECT l.locktype, COALESCE(l.classid::regclass::text, l.relation::regclass::text, '-'),
       COALESCE(l.objid, 0), l.mode
  FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
 WHERE NOT l.granted AND a.datname = current_database();

-- name: statement_cost_worker
-- A worker row for bench/statement_cost.py's claims (nothing else runs in its database).
INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id;

-- name: backend_pid
SELECT pg_backend_pid() AS pid;

-- name: queueing_change_hints_none
-- The job-change triggers dropped: the hints-ab scenario's third side as it is (what the
-- trigger itself costs: not a product setting, waits would be woken only by their
-- timeout), and the first step of the two others (bench/hints_ab.py, set_change_hints).
DROP TRIGGER IF EXISTS queueing_notify_jobs_changed_v2 ON procrastinate_jobs;
DROP TRIGGER IF EXISTS queueing_notify_jobs_changed_v3 ON procrastinate_jobs;

-- name: queueing_change_hints_always
-- Every change hinted (the v2 trigger, as release 14 had and a database upgraded from
-- schema 14 keeps), whether anyone waits or not.
CREATE TRIGGER queueing_notify_jobs_changed_v2
    AFTER UPDATE ON procrastinate_jobs
    REFERENCING NEW TABLE AS changed_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queueing_notify_jobs_changed_v2();

-- name: queueing_change_hints_on_demand
-- As migration 0015 leaves a fresh database: hints only while someone waits.
CREATE TRIGGER queueing_notify_jobs_changed_v3
    AFTER UPDATE ON procrastinate_jobs
    REFERENCING NEW TABLE AS changed_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION queueing_notify_jobs_changed_v3();

-- name: select_one
-- A round trip and nothing else (bench.single_enqueue: each driver's own cost).
SELECT 1;

-- name: backend_pids
-- bench/profile.py: this database's client backends now (their CPU is read from /proc).
SELECT pid FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend';
