-- clear_work.sql — drops what failed or killed loads left in stockload_work.
-- Runs at the start of every load (not on Citus) and after a failed load into an empty table.
-- Reads: the catalog. Writes: drops the staging chunks (stockload_work.stage_*)
-- and deletes the work rows (stockload_work.run_rejects, run_scope) of runs that ended without
-- removing them (a failed or killed run); with setting stockload.clear_run set, only that run's.
-- A running load's chunks are never met: runs take turns (advisory lock), and a failed run's
-- clean-up names its own run.
DO $$
DECLARE
    chunk record;
    only_run text := nullif(current_setting('stockload.clear_run', true), '');
BEGIN
    FOR chunk IN
        SELECT c.relname
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = 'stockload_work'
          AND c.relkind = 'r'
          AND c.relname LIKE 'stage\_%'
          AND (only_run IS NULL OR c.relname LIKE 'stage\_' || only_run || '\_%')
    LOOP
        EXECUTE format('DROP TABLE IF EXISTS stockload_work.%I', chunk.relname);
    END LOOP;
    DELETE FROM stockload_work.run_rejects WHERE only_run IS NULL OR run_id = only_run::bigint;
    DELETE FROM stockload_work.run_scope WHERE only_run IS NULL OR run_id = only_run::bigint;
END
$$;
