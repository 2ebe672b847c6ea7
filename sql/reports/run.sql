-- The run a report is about: run $1, or the last run when $1 is NULL. Read-only.
-- Reads: load_runs. Times in UTC; seconds from start to end (to now while it runs).
SELECT id, status, source, companies_file, change_basis,
       to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS started,
       to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS finished,
       extract(epoch FROM coalesce(finished_at, statement_timestamp()) - started_at)::float8 AS seconds,
       files_listed::bigint, files_loaded::bigint, files_skipped::bigint,
       rows_read, rows_loaded, rows_rejected, error, scripts, stockload_version
FROM load_runs
WHERE id = coalesce($1, (SELECT max(id) FROM load_runs))
