-- Closes a run. $1 id, $2 status, $3 files listed, $4 loaded, $5 skipped, $6 rows read,
-- $7 loaded, $8 rejected, $9 error text, $10 scripts (name:checksum list).
-- statement_timestamp(), not clock_timestamp(): the same instant here, and Citus refuses a
-- VOLATILE function in an UPDATE of its (reference) table.
UPDATE load_runs
SET finished_at = statement_timestamp(), status = $2,
    files_listed = $3, files_loaded = $4, files_skipped = $5,
    rows_read = $6, rows_loaded = $7, rows_rejected = $8,
    error = $9, scripts = $10
WHERE id = $1
