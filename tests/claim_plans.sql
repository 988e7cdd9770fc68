-- Fills for tests/test_claim_plans.py: what else a jobs table holds while a worker claims.

-- name: fill_due
-- Jobs a worker of queue 'q' may claim now (priority 0).
INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, priority)
SELECT 'q', 'noop', '{}', 'todo', 0 FROM generate_series(1, %(n)s);

-- name: fill_delayed
-- Due tomorrow, at a higher priority than the due ones: they sort first.
INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, priority, scheduled_at)
SELECT 'q', 'noop', '{}', 'todo', 10, now() + interval '1 day' FROM generate_series(1, %(n)s);

-- name: fill_other_queue
-- Pending in a queue the worker does not serve, older than the due ones.
INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, priority)
SELECT 'unserved', 'noop', '{}', 'todo', 0 FROM generate_series(1, %(n)s);

-- name: fill_finished
INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, priority, attempts,
                                created_at, started_at, finished_at)
SELECT 'q', 'noop', '{}', 'succeeded', 0, 1, t, t, t
  FROM generate_series(1, %(n)s), (SELECT now() - interval '1 hour' AS t) AS ago;

-- name: fill_scheduled_due
-- Scheduled jobs whose time has come, at the given priority.
INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, priority, scheduled_at)
SELECT 'q', 'noop', '{}', 'todo', %(priority)s, now() - interval '1 minute'
  FROM generate_series(1, %(n)s);

-- name: analyze
ANALYZE procrastinate_jobs;

-- name: a_worker
INSERT INTO procrastinate_workers DEFAULT VALUES RETURNING id;

-- name: fill_warm
INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, priority)
VALUES ('warm', 'noop', '{}', 'todo', 0);

-- name: claimed_priorities
SELECT priority, count(*) AS n FROM procrastinate_jobs
 WHERE status = 'doing' AND queue_name = %(queue)s
 GROUP BY priority ORDER BY priority;
