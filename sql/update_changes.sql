-- update_changes.sql — step 5 of a load.
-- Reads: stockload_scope, historical_stocks_data, setting stockload.change_basis.
-- Writes: value_change and daily_percent_change of historical_stocks_data, only for the companies
-- whose batch reached back into days already stored (stockload_scope.needs_recompute), from the
-- batch's first day on, and only where the stored value differs. Under the previous-close basis
-- a changed or inserted day moves the next day's change too; the intraday basis needs no
-- neighbour, so insert_query.sql already wrote every affected row and this script does nothing.
UPDATE historical_stocks_data AS h
SET value_change         = r.value_change,
    daily_percent_change = r.daily_percent_change
FROM (SELECT x.company_name, x.stock_date, sc.first_date,
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
      WINDOW w AS (PARTITION BY x.company_name ORDER BY x.stock_date)) AS r
WHERE h.company_name = r.company_name
  AND h.stock_date = r.stock_date
  AND r.stock_date >= r.first_date
  AND (h.value_change IS DISTINCT FROM r.value_change
       OR h.daily_percent_change IS DISTINCT FROM r.daily_percent_change);
