-- The benchmark's bulk fills: the rows the large-table scenarios put beside the jobs they
-- measure (bench/large_table.py). Each block is one INSERT ... SELECT generate_series, so a
-- million rows cost seconds, not a million round trips. They go through the table's
-- triggers like any insert (the delayed jobs get their scheduled-event rows).

-- name: finished_jobs
-- (a) %(n)s jobs that finished in the last day (a user keeping a day of history), each
-- with its attempt-history row, as the worker's finish writes them.
WITH jobs AS (
    INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, attempts,
                                    created_at, started_at, finished_at, updated_at, result)
    SELECT 'default', 'history', '{}', 'succeeded', 1,
           now() - interval '1 day' + g * interval '80 ms',
           now() - interval '1 day' + g * interval '80 ms' + interval '2 ms',
           now() - interval '1 day' + g * interval '80 ms' + interval '3 ms',
           now() - interval '1 day' + g * interval '80 ms' + interval '3 ms',
           'null'
      FROM generate_series(1, %(n)s) AS g
    RETURNING id, started_at, finished_at
)
INSERT INTO queueing_attempts (job_id, attempt, started_at, finished_at, outcome)
SELECT id, 1, started_at, finished_at, 'completed' FROM jobs;

-- name: delayed_jobs
-- (b) %(n)s jobs due tomorrow at priority 10: ahead of the due jobs (priority 0) in the
-- claim's priority order, but not claimable.
INSERT INTO procrastinate_jobs (queue_name, task_name, args, priority, scheduled_at)
SELECT 'default', 'later', '{}', 10, now() + interval '1 day' + g * interval '1 ms'
  FROM generate_series(1, %(n)s) AS g;

-- name: other_queue_jobs
-- (c) %(n)s pending jobs in a queue that no running worker serves.
INSERT INTO procrastinate_jobs (queue_name, task_name, args)
SELECT 'elsewhere', 'noop', '{}'
  FROM generate_series(1, %(n)s) AS g;
