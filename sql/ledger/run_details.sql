-- Completes a run's load_runs row: the stockload version, and the start of a failed run.
-- $1 run id, $2 stockload version, $3 the run's measured duration in milliseconds.
-- A failed run's row is written after its rollback (failed_run.sql), so its started_at is then:
-- set it back by the run's measured duration. A run still open has measured 0 so far, and
-- least() keeps its started_at.
UPDATE load_runs
SET stockload_version = $2,
    started_at = least(started_at, coalesce(finished_at, statement_timestamp()) - $3::float8 * interval '1 millisecond')
WHERE id = $1
