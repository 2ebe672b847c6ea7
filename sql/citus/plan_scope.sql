-- citus/plan_scope.sql — step 3 of a load on Citus (instead of plan_scope.sql).
-- Reads: stockload_stage, historical_stocks_data, setting stockload.run_id.
-- Writes: stockload_scope (emptied by citus/create_stage.sql), one row per company of the batch,
-- with the same columns as the temporary table of plan_scope.sql (first_date, seed_date,
-- seed_close, needs_recompute); and load_run_scope (a reference table).
-- stockload_stage, stockload_scope and historical_stocks_data are co-located by company_name,
-- and every join below is on company_name, so Citus runs the statement on each shard, on the
-- workers, in parallel; only one row per company goes back through the coordinator, into
-- load_run_scope.
ANALYZE stockload_stage;

INSERT INTO stockload_scope (company_name, first_date, seed_date, seed_close, needs_recompute)
SELECT b.company_name,
       b.first_date,
       seed.stock_date,
       seed.close_value,
       EXISTS (SELECT 1
               FROM historical_stocks_data AS h
               WHERE h.company_name = b.company_name
                 AND h.stock_date >= b.first_date)
FROM (SELECT company_name, min(stock_date) AS first_date
      FROM stockload_stage
      WHERE reject_kind IS NULL
      GROUP BY company_name) AS b
LEFT JOIN LATERAL (SELECT h.stock_date, h.close_value
                   FROM historical_stocks_data AS h
                   WHERE h.company_name = b.company_name
                     AND h.stock_date < b.first_date
                   ORDER BY h.stock_date DESC
                   LIMIT 1) AS seed ON true;

ANALYZE stockload_scope;

INSERT INTO load_run_scope (run_id, company_name, first_date)
SELECT current_setting('stockload.run_id')::bigint, company_name, first_date
FROM stockload_scope;
