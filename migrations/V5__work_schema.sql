-- V5: a schema for the staging chunks of a load into an empty table, and what they hold.
-- Such a load stages its rows from a second session (so staging overlaps the transforms on another
-- core): each chunk is an UNLOGGED table stockload_work.stage_<run>_<n>, committed by the staging
-- session and read, then dropped, by the load's transaction. Nothing here outlives a run: a failed
-- run's chunks are dropped after it, and the next run sweeps any a crash left behind.
CREATE SCHEMA IF NOT EXISTS stockload_work;

COMMENT ON SCHEMA stockload_work IS
    'Transient staging chunks of running stockload loads (unlogged tables, dropped at the end of each run).';

-- What the staging session finds in each chunk (stage_rejects.sql, stage_scope.sql), kept until
-- the load's transaction moves it into load_rejects and load_run_scope (record_staged.sql).
CREATE UNLOGGED TABLE IF NOT EXISTS stockload_work.run_rejects (LIKE load_rejects);
CREATE UNLOGGED TABLE IF NOT EXISTS stockload_work.run_scope (LIKE load_run_scope);

COMMENT ON TABLE stockload_work.run_rejects IS
    'Rejects of the chunks a running load staged, until its transaction records them in load_rejects.';
COMMENT ON TABLE stockload_work.run_scope IS
    'Companies and first days of the chunks a running load staged, until its transaction records them in load_run_scope.';
