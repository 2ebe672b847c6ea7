-- insert_empty.sql — step 4 of a load into an empty table, once per staging chunk.
-- For an empty historical_stocks_data (the first load, a reload after TRUNCATE), instead of
-- insert_query.sql and update_changes.sql.
-- stockload_stage is then a view of the chunk (stockload_work.stage_<run>_<n>), which holds
-- whole companies only, so every company's window sees all of its rows. The key is dropped
-- before the first chunk (drop_key.sql) and rebuilt after the last (add_key.sql).
-- Reads: stockload_stage, setting stockload.change_basis.
-- Writes: historical_stocks_data — every row of the chunk, with its value_change and
-- daily_percent_change. (The staging session recorded the chunk's rejects and first days:
-- stage_rejects.sql, stage_scope.sql.)
-- The table is empty, so no company has a stored close before the batch: lag's default is NULL.
-- lag() ignores the window frame; the ROWS frame only spares the executor the peer checks of the
-- default RANGE frame (~0.1 s per 2.5 M rows).
-- One statement per change basis, the basis written out: the planner folds the formulas' CASE
-- for a constant basis, and the other statement's one-time filter makes it do nothing.

INSERT INTO historical_stocks_data
    (stock_date, open_value, high_value, low_value, close_value, volume_traded,
     daily_percent_change, value_change, company_name)
SELECT w.stock_date, w.open_value, w.high_value, w.low_value, w.close_value, w.volume_traded,
       stockload_percent_change('previous-close', w.open_value, w.close_value, w.previous_close),
       stockload_value_change('previous-close', w.open_value, w.close_value, w.previous_close),
       w.company_name
FROM (SELECT s.company_name, s.stock_date, s.open_value, s.high_value, s.low_value,
             s.close_value, s.volume_traded,
             lag(s.close_value) OVER (PARTITION BY s.company_name ORDER BY s.stock_date
                                      ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
                 AS previous_close
      FROM stockload_stage AS s
      WHERE s.reject_kind IS NULL) AS w
WHERE current_setting('stockload.change_basis') = 'previous-close';

INSERT INTO historical_stocks_data
    (stock_date, open_value, high_value, low_value, close_value, volume_traded,
     daily_percent_change, value_change, company_name)
SELECT s.stock_date, s.open_value, s.high_value, s.low_value, s.close_value, s.volume_traded,
       stockload_percent_change('intraday', s.open_value, s.close_value, NULL),
       stockload_value_change('intraday', s.open_value, s.close_value, NULL),
       s.company_name
FROM stockload_stage AS s
WHERE s.reject_kind IS NULL
  AND current_setting('stockload.change_basis') = 'intraday';
