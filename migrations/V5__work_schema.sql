-- V5: a schema for the staging chunks of a load into an empty table.
-- Such a load stages its rows from a second session (so staging overlaps the transforms on another
-- core): each chunk is an UNLOGGED table stockload_work.stage_<run>_<n>, committed by the staging
-- session and read, then dropped, by the load's transaction. Nothing here outlives a run: a failed
-- run's chunks are dropped after it, and the next run sweeps any a crash left behind.
CREATE SCHEMA IF NOT EXISTS stockload_work;

COMMENT ON SCHEMA stockload_work IS
    'Transient staging chunks of running stockload loads (unlogged tables, dropped at the end of each run).';
