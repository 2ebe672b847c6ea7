-- citus/update_changes.sql — step 5 of a load on Citus (instead of update_changes.sql).
-- Reads: stockload_scope, historical_stocks_data, setting stockload.change_basis.
-- Writes: value_change and daily_percent_change of historical_stocks_data, only for the companies
-- whose batch reached back into days already stored (stockload_scope.needs_recompute), from the
-- batch's first day on, and only where the stored value differs (see update_changes.sql).
-- One UPDATE joined on the key instead of the plain script's temporary table and row addresses
-- (a row address means nothing across shards): stockload_scope and historical_stocks_data are
-- co-located and the window is PARTITION BY company_name, so each shard is updated on its worker.
UPDATE historical_stocks_data AS h
SET value_change = c.value_change,
    daily_percent_change = c.daily_percent_change
FROM (SELECT x.company_name, x.stock_date, sc.first_date,
             x.value_change AS stored_value_change,
             x.daily_percent_change AS stored_percent_change,
             stockload_value_change('previous-close', x.open_value, x.close_value,
                                    lag(x.close_value) OVER w) AS value_change,
             stockload_percent_change('previous-close', x.open_value, x.close_value,
                                      lag(x.close_value) OVER w) AS daily_percent_change
      FROM stockload_scope AS sc
      JOIN historical_stocks_data AS x
        ON x.company_name = sc.company_name
       AND x.stock_date >= coalesce(sc.seed_date, sc.first_date)
      WHERE sc.needs_recompute
        AND current_setting('stockload.change_basis') = 'previous-close'
      WINDOW w AS (PARTITION BY x.company_name ORDER BY x.stock_date)) AS c
WHERE h.company_name = c.company_name
  AND h.stock_date = c.stock_date
  AND c.stock_date >= c.first_date
  AND (c.stored_value_change IS DISTINCT FROM c.value_change
       OR c.stored_percent_change IS DISTINCT FROM c.daily_percent_change);
