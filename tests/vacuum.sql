-- Statements of tests/test_vacuumer.py.

-- name: make_dead_rows
-- Finished jobs inserted and deleted: each leaves one dead row version behind.
WITH gone AS (
    INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, attempts,
                                    created_at, started_at, finished_at)
    SELECT 'q', 'noop', '{}', 'succeeded', 1, t, t, t
      FROM generate_series(1, %(n)s), (SELECT now() - interval '1 hour' AS t) AS ago
    RETURNING id
)
SELECT count(*) FROM gone;

-- name: delete_jobs
DELETE FROM procrastinate_jobs;

-- name: table_state
SELECT n_dead_tup, last_vacuum FROM pg_stat_user_tables
 WHERE relid = 'procrastinate_jobs'::regclass;

-- name: vacuum
VACUUM procrastinate_jobs;
