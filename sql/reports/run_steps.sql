-- The steps of run $1 in order, with their timings (the report's timeline). Read-only.
-- Reads: load_run_steps.
SELECT step, coalesce(checksum, '') AS checksum, rows, millis
FROM load_run_steps
WHERE run_id = $1
ORDER BY position
