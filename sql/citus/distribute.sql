-- citus/distribute.sql — run by `stockload migrate --distributed` after the migrations, on the
-- coordinator of a Citus cluster (the citus extension created, the workers added). Idempotent:
-- each step is skipped when already done, so it can be rerun after a later migration.
-- Reads: pg_dist_partition. Writes: the Citus metadata and shards of
--   historical_stocks_data   distributed by company_name (every window in sql/ is PARTITION BY
--                            company_name, so each company's rows and changes live on one worker);
--   stockload_stage          the load's staging table: on Citus a regular table (temporary tables
--                            cannot be distributed), distributed and co-located with
--                            historical_stocks_data, emptied at the start of every load inside the
--                            load's transaction (loads are serialised by the advisory lock),
--                            and emptied again at its end (citus/clear_stage.sql);
--   stockload_scope          the per-company plan of the load (plan_scope.sql), likewise;
--   quality_flags            distributed by company_name, co-located: each company's flags beside
--                            its rows;
--   stockload_quality_scope, stockload_quality_suspects, stockload_quality_found
--                            the work tables of citus/quality_checks.sql (temporary tables there),
--                            distributed and co-located, emptied by it at its start and end;
--   load_runs, load_rejects, processed_markers, load_run_scope, load_run_steps, quality_run_counts,
--   stockload_quality_settings, stockload_quality_calendar
--                            reference tables (a copy on every node): their foreign keys are kept,
--                            and the transform scripts can join them with the distributed tables.
-- Rows already in historical_stocks_data are moved into its shards.
CREATE TABLE IF NOT EXISTS stockload_stage (
    company_name  text COLLATE "C" NOT NULL,
    line          bigint,
    stock_date    date,
    open_value    numeric,
    high_value    numeric,
    low_value     numeric,
    close_value   numeric,
    volume_traded bigint,
    reject_kind   text,
    reject_reason text,
    source_file   text,
    raw_text      text
);
COMMENT ON TABLE stockload_stage IS
    'Citus only: staging table of the running load (emptied at the start and at the end of each load).';

CREATE TABLE IF NOT EXISTS stockload_scope (
    company_name    text COLLATE "C" NOT NULL,
    first_date      date NOT NULL,
    seed_date       date,
    seed_close      numeric,
    needs_recompute boolean NOT NULL
);
COMMENT ON TABLE stockload_scope IS
    'Citus only: per company of the running load, its first day, the stored day and close before it, '
    'and whether stored days are touched (see sql/citus/plan_scope.sql).';

-- The work tables of citus/quality_checks.sql (see quality_checks.sql for what each holds).
CREATE TABLE IF NOT EXISTS stockload_quality_settings (
    run_id bigint, volatility_days int, min_volatility_days int, normal_move_factor float8,
    jump_scale_multiple float8, jump_min_factor float8, split_ratio_tolerance float8,
    split_ratio_scale_multiple float8, split_persist_days int, split_persist_share float8,
    unit_factor float8, unit_tolerance float8, unit_neighbours_agree float8,
    calendar_share float8, calendar_min_companies int, missing_min_sessions int
);
CREATE TABLE IF NOT EXISTS stockload_quality_scope (
    company_name text COLLATE "C" NOT NULL, first_date date NOT NULL, eval_from date,
    read_from date
);
CREATE TABLE IF NOT EXISTS stockload_quality_calendar (
    stock_date date NOT NULL, is_session int NOT NULL, sessions_through bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS stockload_quality_suspects (
    company_name text COLLATE "C" NOT NULL, stock_date date NOT NULL, open_value numeric,
    high_value numeric, low_value numeric, close_value numeric, volume_traded numeric,
    open float8, close float8, prev_date date, prev_close float8, prev2_close float8,
    next_close float8, ahead_max_close float8, ahead_min_close float8, move float8, gap float8,
    missing bigint, scale float8, unit_off boolean, after_unit_off boolean
);
CREATE TABLE IF NOT EXISTS stockload_quality_found (
    company_name text COLLATE "C" NOT NULL, stock_date date NOT NULL, check_name text NOT NULL,
    severity text NOT NULL, detail text NOT NULL
);
COMMENT ON TABLE stockload_quality_settings IS 'Citus only: the thresholds of the running quality checks.';
COMMENT ON TABLE stockload_quality_scope IS 'Citus only: the companies and days the running quality checks read.';
COMMENT ON TABLE stockload_quality_calendar IS 'Citus only: the trading calendar the running quality checks learned.';
COMMENT ON TABLE stockload_quality_suspects IS 'Citus only: the rows the running quality checks found suspect.';
COMMENT ON TABLE stockload_quality_found IS 'Citus only: the flags the running quality checks raised.';

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['load_runs', 'load_rejects', 'processed_markers', 'load_run_scope', 'load_run_steps',
                                'quality_run_counts', 'stockload_quality_settings',
                                'stockload_quality_calendar'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
                       WHERE logicalrelid = name::regclass AND partmethod = 'n' AND repmodel = 't') THEN
            -- (Once load_runs is one, Citus has already added the tables that refer to it
            -- to its metadata as local tables; create_reference_table converts those too.)
            PERFORM create_reference_table(name::regclass);
        END IF;
    END LOOP;
    FOREACH name IN ARRAY ARRAY['historical_stocks_data', 'stockload_stage', 'stockload_scope',
                                'quality_flags', 'stockload_quality_scope',
                                'stockload_quality_suspects', 'stockload_quality_found'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_dist_partition
                       WHERE logicalrelid = name::regclass AND partmethod = 'h') THEN
            PERFORM create_distributed_table(name::regclass, 'company_name',
                                             colocate_with => CASE WHEN name = 'historical_stocks_data'
                                                                   THEN 'default'
                                                                   ELSE 'historical_stocks_data' END);
        END IF;
    END LOOP;
END
$$;
