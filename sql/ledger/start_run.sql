-- Opens a run in load_runs, committed at once by the run's ledger session, which stays open
-- until the row is closed: its process id and start mark the run as alive.
-- $1 source, $2 companies file, $3 change basis, $4 status (running), $5 the run's real start,
-- $6 the ledger session's process id, $7 its start (pg_stat_activity.backend_start).
-- Returns its id.
INSERT INTO load_runs (source, companies_file, change_basis, status, started_at,
                       backend_pid, backend_started, opened_at)
VALUES ($1, $2, $3, $4, $5::timestamptz, $6, $7::timestamptz, clock_timestamp())
RETURNING id
