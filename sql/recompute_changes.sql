-- recompute_changes.sql — standalone: the Data Pipeline SqlActivity after a load, or psql/pgAdmin.
-- Reads and writes historical_stocks_data only; needs no staging table.
-- Recomputes value_change and daily_percent_change of every row with window functions and writes
-- only the rows whose stored value differs, so on a consistent table it changes nothing.
-- Basis: the setting stockload.change_basis when set (SET stockload.change_basis = 'intraday';),
-- otherwise previous-close.
UPDATE historical_stocks_data AS h
SET value_change         = r.value_change,
    daily_percent_change = r.daily_percent_change
FROM (SELECT x.company_name, x.stock_date,
             stockload_value_change(p.basis, x.open_value, x.close_value,
                                    lag(x.close_value) OVER w) AS value_change,
             stockload_percent_change(p.basis, x.open_value, x.close_value,
                                      lag(x.close_value) OVER w) AS daily_percent_change
      FROM historical_stocks_data AS x
      CROSS JOIN (SELECT coalesce(nullif(current_setting('stockload.change_basis', true), ''),
                                  'previous-close') AS basis) AS p
      WINDOW w AS (PARTITION BY x.company_name ORDER BY x.stock_date)) AS r
WHERE h.company_name = r.company_name
  AND h.stock_date = r.stock_date
  AND (h.value_change IS DISTINCT FROM r.value_change
       OR h.daily_percent_change IS DISTINCT FROM r.daily_percent_change);
