-- The last $2 runs up to run $1, oldest first: the report's history charts. Read-only.
-- Reads: load_runs.
SELECT id, status, rows_loaded, rows_rejected,
       extract(epoch FROM coalesce(finished_at, started_at) - started_at)::float8 AS seconds
FROM (SELECT * FROM load_runs WHERE id <= $1 ORDER BY id DESC LIMIT $2) AS recent
ORDER BY id
