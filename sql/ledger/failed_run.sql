-- Records a run that failed before its load_runs row was opened (bad index, unreachable
-- storage, a failed migration). $1 source, $2 companies file, $3 basis, $4..$9 counts as in
-- finish_run.sql, $10 error, $11 status (failed), $12 the run's real start.
INSERT INTO load_runs (source, companies_file, change_basis, status, started_at, finished_at,
                       files_listed, files_loaded, files_skipped, rows_read, rows_loaded,
                       rows_rejected, error)
VALUES ($1, $2, $3, $11, $12::timestamptz, clock_timestamp(), $4, $5, $6, $7, $8, $9, $10)
RETURNING id
