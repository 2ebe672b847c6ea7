-- Completes a run's load_runs row: the stockload version, and the start of a failed run.
-- $1 run id, $2 stockload version, $3 the run's measured duration in milliseconds.
-- A failed run's row is written after its rollback (failed_run.sql), so its started_at is then:
-- set it back by the run's measured duration. A succeeding run has measured 0 so far, and
-- least() keeps its started_at.
-- Written with immutable functions only (timestamptz - timestamptz, extract from an interval,
-- to_timestamp): Citus refuses STABLE ones (timestamptz - interval) on columns in an UPDATE of
-- its reference table, and any non-immutable one inside coalesce or CASE.
UPDATE load_runs
SET stockload_version = $2,
    started_at = least(started_at,
                       to_timestamp(extract(epoch FROM finished_at - timestamptz 'epoch')::float8
                                    - $3::float8 / 1000))
WHERE id = $1
