-- V10: what the staging session counts in each chunk of a load into an empty table, for the
-- data-quality checks of that first load (quality_checks.sql learns its trading calendar from the
-- bars per day and finds the companies that miss sessions from the bars per company, without
-- reading the table again). Kept until the load's checks have run (clear_staged.sql): like
-- everything in stockload_work, nothing here outlives a run.
ALTER TABLE stockload_work.run_scope
    ADD COLUMN IF NOT EXISTS bars bigint;

COMMENT ON COLUMN stockload_work.run_scope.bars IS
    'How many rows the run loads for the company (stage_scope.sql).';

CREATE UNLOGGED TABLE IF NOT EXISTS stockload_work.run_days (
    run_id     bigint NOT NULL,
    stock_date date   NOT NULL,
    bars       bigint NOT NULL
);

COMMENT ON TABLE stockload_work.run_days IS
    'Rows per day in each staged chunk of a running load into an empty table (stage_scope.sql), '
    'until its quality checks have learned the trading calendar from them.';
COMMENT ON COLUMN stockload_work.run_days.run_id IS 'The load (load_runs.id).';
COMMENT ON COLUMN stockload_work.run_days.stock_date IS 'A trading day with rows in the chunk.';
COMMENT ON COLUMN stockload_work.run_days.bars IS
    'How many of the chunk''s companies have a row that day (one chunk''s count: sum them).';
