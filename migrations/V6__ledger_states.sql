-- V6: the ledger tells the truth about runs that failed or died.
-- A run's row is now written (and committed) when the run starts, by a ledger session of its own
-- that stays open until the row is closed: succeeded (in the load's transaction), failed (after
-- the rollback, 0 loaded, its real duration) or abandoned (its session is gone without a word:
-- kill -9, a lost connection, a machine gone; found and closed by the next run).
ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS backend_pid integer;
ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS backend_started timestamptz;
ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS opened_at timestamptz;
ALTER TABLE load_runs DROP CONSTRAINT IF EXISTS load_runs_status_check;
ALTER TABLE load_runs ADD CONSTRAINT load_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'abandoned'));

COMMENT ON COLUMN load_runs.status IS
    'running (its ledger session is open), succeeded, failed (rolled back: nothing loaded) or '
    'abandoned (the run died without a word; closed by a later run). Only a succeeded run changed data.';
COMMENT ON COLUMN load_runs.backend_pid IS
    'Server process id of the run''s ledger session: while it is alive the run is running; a running '
    'row whose session is gone was abandoned.';
COMMENT ON COLUMN load_runs.backend_started IS
    'When that session started (pg_stat_activity.backend_start), so a reused process id is not taken '
    'for the run''s session.';
COMMENT ON COLUMN load_runs.started_at IS
    'When the run started (before it waited for other runs to finish: see opened_at).';
COMMENT ON COLUMN load_runs.opened_at IS
    'When the run had its turn (the load lock) and opened this row; opened_at - started_at is the '
    'time it waited for other runs.';
COMMENT ON COLUMN load_runs.finished_at IS
    'When the run ended; NULL while running, and for an abandoned run (when it died is not known).';
COMMENT ON COLUMN load_runs.rows_read IS
    'Data lines read from loaded files: rows_loaded + rows_rejected for a succeeded run; a failed or '
    'abandoned run keeps what it read and rejected but loaded 0.';
