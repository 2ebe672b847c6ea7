-- stage_scope.sql — the staging session counts a chunk's companies and days (load into an empty
-- table). Runs on each chunk it staged, before committing it.
-- Reads: stockload_stage (a view of the chunk, which holds whole companies), setting
-- stockload.run_id.
-- Writes: stockload_work.run_scope, per company its first loaded day and its rows (the
-- first day for the scoped follow-up recompute_changes.sql: record_staged.sql copies it into
-- load_run_scope inside the load's transaction); stockload_work.run_days, the chunk's rows per
-- day. The quality checks of the load (quality_checks.sql) learn the trading calendar from those
-- counts; clear_staged.sql removes them after.
-- One pass over the chunk, both groupings at once.
WITH counted AS (
    SELECT s.company_name, s.stock_date,
           min(s.stock_date) AS first_date, count(*) AS bars,
           GROUPING(s.company_name) AS per_day
    FROM stockload_stage AS s
    WHERE s.reject_kind IS NULL
    GROUP BY GROUPING SETS ((s.company_name), (s.stock_date))
),
days AS (
    INSERT INTO stockload_work.run_days (run_id, stock_date, bars)
    SELECT current_setting('stockload.run_id')::bigint, c.stock_date, c.bars
    FROM counted AS c
    WHERE c.per_day = 1
)
INSERT INTO stockload_work.run_scope (run_id, company_name, first_date, bars)
SELECT current_setting('stockload.run_id')::bigint, c.company_name, c.first_date, c.bars
FROM counted AS c
WHERE c.per_day = 0;
