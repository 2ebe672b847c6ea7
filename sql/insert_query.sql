-- insert_query.sql — step 4 of a load.
-- Reads: stockload_stage, stockload_scope, setting stockload.change_basis ('previous-close' or
-- 'intraday'). Writes: historical_stocks_data — every row of the batch, with its value_change and
-- daily_percent_change.
-- The window runs over the batch sorted by company and day; lag's default supplies the close
-- already stored before the batch, so a later batch's first new day continues from it.
-- Two statements with the same SELECT, because they differ in what they may meet:
--   1. companies with nothing stored on or after their first new day (the usual daily append):
--      no row can conflict, so a plain INSERT (no per-row speculative insertion: ~40% faster);
--   2. companies whose batch reaches back into stored days (backfill, corrections): an upsert on
--      (company_name, stock_date); update_changes.sql then fixes the days after.

INSERT INTO historical_stocks_data
    (stock_date, open_value, high_value, low_value, close_value, volume_traded,
     daily_percent_change, value_change, company_name)
SELECT w.stock_date, w.open_value, w.high_value, w.low_value, w.close_value, w.volume_traded,
       stockload_percent_change(p.basis, w.open_value, w.close_value, w.previous_close),
       stockload_value_change(p.basis, w.open_value, w.close_value, w.previous_close),
       w.company_name
FROM (SELECT s.company_name, s.stock_date, s.open_value, s.high_value, s.low_value,
             s.close_value, s.volume_traded,
             lag(s.close_value, 1, sc.seed_close)
                 OVER (PARTITION BY s.company_name ORDER BY s.stock_date) AS previous_close
      FROM stockload_stage AS s
      JOIN stockload_scope AS sc USING (company_name)
      WHERE s.reject_kind IS NULL
        AND NOT sc.needs_recompute) AS w
CROSS JOIN (SELECT current_setting('stockload.change_basis') AS basis) AS p;

INSERT INTO historical_stocks_data AS h
    (stock_date, open_value, high_value, low_value, close_value, volume_traded,
     daily_percent_change, value_change, company_name)
SELECT w.stock_date, w.open_value, w.high_value, w.low_value, w.close_value, w.volume_traded,
       stockload_percent_change(p.basis, w.open_value, w.close_value, w.previous_close),
       stockload_value_change(p.basis, w.open_value, w.close_value, w.previous_close),
       w.company_name
FROM (SELECT s.company_name, s.stock_date, s.open_value, s.high_value, s.low_value,
             s.close_value, s.volume_traded,
             lag(s.close_value, 1, sc.seed_close)
                 OVER (PARTITION BY s.company_name ORDER BY s.stock_date) AS previous_close
      FROM stockload_stage AS s
      JOIN stockload_scope AS sc USING (company_name)
      WHERE s.reject_kind IS NULL
        AND sc.needs_recompute) AS w
CROSS JOIN (SELECT current_setting('stockload.change_basis') AS basis) AS p
ON CONFLICT (company_name, stock_date) DO UPDATE
SET open_value           = EXCLUDED.open_value,
    high_value           = EXCLUDED.high_value,
    low_value            = EXCLUDED.low_value,
    close_value          = EXCLUDED.close_value,
    volume_traded        = EXCLUDED.volume_traded,
    daily_percent_change = EXCLUDED.daily_percent_change,
    value_change         = EXCLUDED.value_change;
