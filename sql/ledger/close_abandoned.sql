-- Closes runs that died without a word: $1 the ids of rows still 'running' whose ledger session
-- is gone (checked against pg_stat_activity by the caller, under the load lock, before this run
-- opens its own row). Nothing they staged was committed (their transactions died with them), so
-- they loaded nothing. $2 when and by whom they were found, for the error text.
-- Returns each closed run's id (no other expression: Citus allows only immutable ones in the
-- RETURNING of a reference table's UPDATE).
UPDATE load_runs
SET status = 'abandoned', files_loaded = 0, rows_loaded = 0,
    error = 'the run died without a word (killed, its connection lost or its machine gone): '
            || 'its database session (process ' || coalesce(backend_pid::text, 'unknown')
            || ') was gone when ' || $2 || '; nothing it staged was committed'
WHERE id = ANY($1) AND status = 'running'
RETURNING id
