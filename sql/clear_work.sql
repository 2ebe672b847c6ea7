-- clear_work.sql — drops what failed or killed loads left in stockload_work.
-- Runs at the start of every load (not on Citus) and after a failed load.
-- Reads: the catalog. Writes: drops the staging chunks (stockload_work.stage_*) and deletes the
-- work rows (stockload_work.run_rejects, run_scope, run_days) of runs that ended without removing
-- them (a failed or killed run); with setting stockload.clear_run set, only that run's.
-- A running load's chunks are never met: runs take turns (advisory lock), and a failed run's
-- clean-up names its own run.
DO $$
DECLARE
    chunk record;
    only_run text := nullif(current_setting('stockload.clear_run', true), '');
    lock_timeout_before text := current_setting('lock_timeout');
BEGIN
    -- A chunk still locked belongs to a run whose server process has not yet noticed its client
    -- is gone: skip it after a short wait (the next load drops it) rather than stall this one.
    PERFORM set_config('lock_timeout', '2s', true);
    FOR chunk IN
        SELECT c.relname
        FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE n.nspname = 'stockload_work'
          AND c.relkind = 'r'
          AND c.relname LIKE 'stage\_%'
          AND (only_run IS NULL OR c.relname LIKE 'stage\_' || only_run || '\_%')
    LOOP
        BEGIN
            EXECUTE format('DROP TABLE IF EXISTS stockload_work.%I', chunk.relname);
        EXCEPTION WHEN lock_not_available THEN
            RAISE NOTICE 'staging chunk stockload_work.% is still locked; left for the next load',
                chunk.relname;
        END;
    END LOOP;
    PERFORM set_config('lock_timeout', lock_timeout_before, true);
    DELETE FROM stockload_work.run_rejects WHERE only_run IS NULL OR run_id = only_run::bigint;
    DELETE FROM stockload_work.run_scope WHERE only_run IS NULL OR run_id = only_run::bigint;
    DELETE FROM stockload_work.run_days WHERE only_run IS NULL OR run_id = only_run::bigint;
END
$$;
