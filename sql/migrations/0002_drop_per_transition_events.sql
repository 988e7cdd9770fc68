-- 0002: stop writing procrastinate's per-transition event rows.
--
-- procrastinate inserts a row into procrastinate_events (with a foreign-key check) on
-- every insert and every status change of a job. Our record already carries each
-- transition's time on the job row itself (created_at, started_at, finished_at,
-- updated_at), stamped in the same statement. Measured with bench/status_layout-style
-- claim+finish loops (20,000 jobs, batches of 100): these two triggers were ~40% of the
-- database time per job (8,150 -> 12,900 jobs/s serial). docs/design.md has the figures.
--
-- What stops working: procrastinate's own event-based helpers (`procrastinate
-- healthchecks`' stalled-by-start query, `delete_old_jobs`) see no new events. The
-- rarer events (abort requested, scheduled) are kept.
DROP TRIGGER procrastinate_trigger_status_events_update_v1 ON procrastinate_jobs;
DROP TRIGGER procrastinate_trigger_status_events_insert_v1 ON procrastinate_jobs;
