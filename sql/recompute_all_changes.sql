-- recompute_all_changes.sql — standalone repair: psql/pgAdmin or a SqlActivity.
-- Reads and writes historical_stocks_data only; needs no staging table.
-- Recomputes value_change and daily_percent_change of every row with window functions and writes
-- only the rows whose stored value differs, so on a consistent table it changes nothing.
-- Basis: the setting stockload.change_basis when set (SET stockload.change_basis = 'intraday';),
-- otherwise previous-close. Cost: one pass over the whole table (the usual follow-up after a
-- load is the scoped recompute_changes.sql). Works in autocommit or inside a transaction; it
-- updates by row address, so no plan can go quadratic on stale statistics.
DROP TABLE IF EXISTS stockload_recompute;

CREATE TEMPORARY TABLE stockload_recompute AS
SELECT r.row_id, r.value_change, r.daily_percent_change
FROM (SELECT x.ctid AS row_id,
             x.value_change AS stored_value_change,
             x.daily_percent_change AS stored_percent_change,
             stockload_value_change(p.basis, x.open_value, x.close_value,
                                    lag(x.close_value) OVER w) AS value_change,
             stockload_percent_change(p.basis, x.open_value, x.close_value,
                                      lag(x.close_value) OVER w) AS daily_percent_change
      FROM historical_stocks_data AS x
      CROSS JOIN (SELECT coalesce(nullif(current_setting('stockload.change_basis', true), ''),
                                  'previous-close') AS basis) AS p
      WINDOW w AS (PARTITION BY x.company_name ORDER BY x.stock_date)) AS r
WHERE r.stored_value_change IS DISTINCT FROM r.value_change
   OR r.stored_percent_change IS DISTINCT FROM r.daily_percent_change;

ALTER TABLE stockload_recompute ADD PRIMARY KEY (row_id);
ANALYZE stockload_recompute;

UPDATE historical_stocks_data AS h
SET (value_change, daily_percent_change) =
    (SELECT c.value_change, c.daily_percent_change
     FROM stockload_recompute AS c
     WHERE c.row_id = h.ctid)
WHERE h.ctid = ANY (ARRAY(SELECT c.row_id FROM stockload_recompute AS c));

DROP TABLE stockload_recompute;
