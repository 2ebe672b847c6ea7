-- citus/insert_query.sql — step 4 of a load on Citus (instead of insert_query.sql).
-- Reads: stockload_stage, stockload_scope, setting stockload.change_basis (set on every node by
-- SET LOCAL). Writes: historical_stocks_data — every row of the batch, with its value_change and
-- daily_percent_change.
-- The same two statements as insert_query.sql (a plain INSERT for append-only companies, an
-- upsert for those whose batch reaches back into stored days), with one difference: the change
-- basis is read with current_setting() in place, not from a one-row subquery, because Citus
-- plans such a subquery apart (a "distributed subplan") and then repartitions the whole batch
-- between the workers instead of inserting each shard's rows where they already are. As written,
-- stockload_stage, stockload_scope and historical_stocks_data being co-located, each statement
-- runs as one INSERT … SELECT per shard on its worker.

INSERT INTO historical_stocks_data
    (stock_date, open_value, high_value, low_value, close_value, volume_traded,
     daily_percent_change, value_change, company_name)
SELECT w.stock_date, w.open_value, w.high_value, w.low_value, w.close_value, w.volume_traded,
       stockload_percent_change(current_setting('stockload.change_basis'), w.open_value, w.close_value, w.previous_close),
       stockload_value_change(current_setting('stockload.change_basis'), w.open_value, w.close_value, w.previous_close),
       w.company_name
FROM (SELECT s.company_name, s.stock_date, s.open_value, s.high_value, s.low_value,
             s.close_value, s.volume_traded,
             lag(s.close_value, 1, sc.seed_close)
                 OVER (PARTITION BY s.company_name ORDER BY s.stock_date) AS previous_close
      FROM stockload_stage AS s
      JOIN stockload_scope AS sc USING (company_name)
      WHERE s.reject_kind IS NULL
        AND NOT sc.needs_recompute) AS w;

INSERT INTO historical_stocks_data AS h
    (stock_date, open_value, high_value, low_value, close_value, volume_traded,
     daily_percent_change, value_change, company_name)
SELECT w.stock_date, w.open_value, w.high_value, w.low_value, w.close_value, w.volume_traded,
       stockload_percent_change(current_setting('stockload.change_basis'), w.open_value, w.close_value, w.previous_close),
       stockload_value_change(current_setting('stockload.change_basis'), w.open_value, w.close_value, w.previous_close),
       w.company_name
FROM (SELECT s.company_name, s.stock_date, s.open_value, s.high_value, s.low_value,
             s.close_value, s.volume_traded,
             lag(s.close_value, 1, sc.seed_close)
                 OVER (PARTITION BY s.company_name ORDER BY s.stock_date) AS previous_close
      FROM stockload_stage AS s
      JOIN stockload_scope AS sc USING (company_name)
      WHERE s.reject_kind IS NULL
        AND sc.needs_recompute) AS w
ON CONFLICT (company_name, stock_date) DO UPDATE
SET open_value           = EXCLUDED.open_value,
    high_value           = EXCLUDED.high_value,
    low_value            = EXCLUDED.low_value,
    close_value          = EXCLUDED.close_value,
    volume_traded        = EXCLUDED.volume_traded,
    daily_percent_change = EXCLUDED.daily_percent_change,
    value_change         = EXCLUDED.value_change;
