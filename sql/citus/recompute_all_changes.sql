-- citus/recompute_all_changes.sql — standalone whole-table repair on Citus (instead of
-- recompute_all_changes.sql).
-- Reads: historical_stocks_data; optional setting stockload.change_basis ('intraday' or
-- 'previous-close', the default). Writes: value_change and daily_percent_change of every row
-- whose stored value differs from the recomputed one; on a consistent table it changes nothing.
-- One UPDATE joined on the key; the window is PARTITION BY company_name, so each shard is
-- recomputed and updated on its worker, in parallel. The basis stays in a one-row subquery:
-- Citus evaluates it on the coordinator, where a session's SET stockload.change_basis is seen
-- (the workers' sessions do not have it).
UPDATE historical_stocks_data AS h
SET value_change = c.value_change,
    daily_percent_change = c.daily_percent_change
FROM (SELECT x.company_name, x.stock_date,
             x.value_change AS stored_value_change,
             x.daily_percent_change AS stored_percent_change,
             stockload_value_change(p.basis, x.open_value, x.close_value,
                                    lag(x.close_value) OVER w) AS value_change,
             stockload_percent_change(p.basis, x.open_value, x.close_value,
                                      lag(x.close_value) OVER w) AS daily_percent_change
      FROM historical_stocks_data AS x
      CROSS JOIN (SELECT coalesce(nullif(current_setting('stockload.change_basis', true), ''),
                                  'previous-close') AS basis) AS p
      WINDOW w AS (PARTITION BY x.company_name ORDER BY x.stock_date)) AS c
WHERE h.company_name = c.company_name
  AND h.stock_date = c.stock_date
  AND (c.stored_value_change IS DISTINCT FROM c.value_change
       OR c.stored_percent_change IS DISTINCT FROM c.daily_percent_change);
