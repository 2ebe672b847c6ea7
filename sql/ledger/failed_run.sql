-- Records a run that failed and was rolled back (its own row went with the rollback).
-- $1 source, $2 companies file, $3 basis, $4..$9 counts as in finish_run.sql, $10 error,
-- $11 status (failed).
INSERT INTO load_runs (source, companies_file, change_basis, status, finished_at,
                       files_listed, files_loaded, files_skipped, rows_read, rows_loaded,
                       rows_rejected, error)
VALUES ($1, $2, $3, $11, clock_timestamp(), $4, $5, $6, $7, $8, $9, $10)
RETURNING id
