-- Closes the row of a run that failed after opening it: its transaction rolled back, so it
-- loaded nothing; what it read and rejected is kept. $1 id, $2 status (failed), $3 files listed,
-- $4 skipped, $5 rows read, $6 rejected, $7 error.
UPDATE load_runs
SET finished_at = statement_timestamp(), status = $2,
    files_listed = $3, files_loaded = 0, files_skipped = $4,
    rows_read = $5, rows_loaded = 0, rows_rejected = $6, error = $7
WHERE id = $1
