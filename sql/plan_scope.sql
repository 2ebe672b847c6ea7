-- plan_scope.sql — step 3 of a load.
-- Reads: stockload_stage, historical_stocks_data, setting stockload.run_id.
-- Writes: load_run_scope (company and first day of this run, for the scoped follow-up
-- recompute_changes.sql) and the temporary table stockload_scope, one row per company of the batch:
--   first_date       the batch's earliest day for the company;
--   seed_close       the close of the last day already stored before first_date (NULL if none):
--                    the previous close of the batch's first day;
--   needs_recompute  true when rows already stored lie on or after first_date (a backfill or a
--                    correction): their changes are recomputed by update_changes.sql. For the usual
--                    append-only batch it is false and insert_query.sql computes everything in one pass.
-- Temporary tables are never autovacuumed: without this the planner would guess their size.
-- Every lookup into historical_stocks_data below is per company (index probes), so its cost
-- does not depend on what the planner believes about that table.
ANALYZE stockload_stage;

CREATE TEMPORARY TABLE stockload_scope ON COMMIT DROP AS
SELECT b.company_name,
       b.first_date,
       seed.stock_date  AS seed_date,
       seed.close_value AS seed_close,
       EXISTS (SELECT 1
               FROM historical_stocks_data AS h
               WHERE h.company_name = b.company_name
                 AND h.stock_date >= b.first_date) AS needs_recompute
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
