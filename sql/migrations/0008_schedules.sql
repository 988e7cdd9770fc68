-- Migration 0008: periodic jobs.
--
-- * queueing_schedules: the schedules the workers' code declares (queueing.schedules),
--   registered by each worker's scheduler when it starts. registered_at is when a
--   schedule was first seen: no tick before it is ever run (a daily job deployed at 14:00
--   does not fire at once for that morning's 03:00).
-- * queueing_schedule_ticks: one row per tick run, and its primary key (schedule, tick) is
--   what makes a tick run once whatever the number of workers: every worker's scheduler
--   computes the same due ticks and inserts them with ON CONFLICT DO NOTHING, in the same
--   statement as the job of each tick it inserted (sql/queries.sql, fire_schedule_ticks),
--   so a tick row exists if and only if its job does. The job is an ordinary job (status
--   record, retries, cancel, history); its row carries its tick (schedule_tick).
-- * queueing_clock: the queue clock of tests. queueing_now_v1() is now() plus an offset that
--   only the test helper (testing_advance_clock) ever sets; the table is empty in
--   production, where it is now(). The scheduler reads the time through it, so a test
--   moves a schedule through hours of ticks without waiting for the wall clock.

CREATE TABLE queueing_clock (
    -- One row at most.
    id     boolean  PRIMARY KEY DEFAULT true CHECK (id),
    offset_by interval NOT NULL DEFAULT '0'
);

CREATE FUNCTION queueing_now_v1()
    RETURNS timestamptz
    LANGUAGE sql
    STABLE
AS $$
    SELECT now() + COALESCE((SELECT c.offset_by FROM queueing_clock AS c), interval '0')
$$;

CREATE TABLE queueing_schedules (
    name          text        PRIMARY KEY,
    task_name     text        NOT NULL,
    cron          text        NOT NULL,
    timezone      text        NOT NULL,
    queue_name    text        NOT NULL,
    args          jsonb       NOT NULL DEFAULT '{}',
    -- Queue clock (queueing_now_v1): first seen; last declared by a starting worker.
    registered_at timestamptz NOT NULL,
    seen_at       timestamptz NOT NULL
);

CREATE TABLE queueing_schedule_ticks (
    schedule_name text        NOT NULL,
    -- The tick, in the queue clock's time (the cron instant).
    tick_at       timestamptz NOT NULL,
    -- The tick's job (no foreign key: retention deletes jobs, the tick stays the record
    -- that this tick ran).
    job_id        bigint      NOT NULL,
    PRIMARY KEY (schedule_name, tick_at)
);

ALTER TABLE procrastinate_jobs ADD COLUMN schedule_tick timestamptz;

REVOKE ALL ON queueing_clock, queueing_schedules, queueing_schedule_ticks FROM PUBLIC;
