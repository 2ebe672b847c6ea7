-- recompute_changes.sql — standalone: the Data Pipeline SqlActivity after a load, or psql/pgAdmin.
-- Reads: load_runs, load_run_scope, historical_stocks_data; optional setting
-- stockload.recompute_run (a load_runs.id; default: the last succeeded run).
-- Writes: value_change and daily_percent_change of historical_stocks_data, only within what that
-- run touched: for each of its companies, the days from its first loaded day on. Values are
-- recomputed with a window (seeded by the stored day before) under the run's change basis, and
-- only rows whose stored value differs are written, so after a consistent load it changes nothing.
-- Cost: O(the run's days), not O(table). For a whole-table repair use recompute_all_changes.sql.
-- Works in autocommit (one session-temporary table, dropped at the end) or inside a transaction;
-- like update_changes.sql it updates by row address, so no plan can go quadratic on stale
-- statistics.
DROP TABLE IF EXISTS stockload_recompute;

CREATE TEMPORARY TABLE stockload_recompute AS
SELECT r.row_id, r.value_change, r.daily_percent_change
FROM (SELECT s.company_name, s.first_date, run.change_basis AS basis
      FROM load_runs AS run
      JOIN load_run_scope AS s ON s.run_id = run.id
      WHERE run.id = coalesce(nullif(current_setting('stockload.recompute_run', true), '')::bigint,
                              (SELECT max(l.id) FROM load_runs AS l WHERE l.status = 'succeeded'))
     ) AS sc
CROSS JOIN LATERAL (
    SELECT x.ctid AS row_id, x.stock_date,
           x.value_change AS stored_value_change,
           x.daily_percent_change AS stored_percent_change,
           stockload_value_change(sc.basis, x.open_value, x.close_value,
                                  lag(x.close_value) OVER w) AS value_change,
           stockload_percent_change(sc.basis, x.open_value, x.close_value,
                                    lag(x.close_value) OVER w) AS daily_percent_change
    FROM historical_stocks_data AS x
    WHERE x.company_name = sc.company_name
      AND x.stock_date >= coalesce((SELECT max(y.stock_date)
                                    FROM historical_stocks_data AS y
                                    WHERE y.company_name = sc.company_name
                                      AND y.stock_date < sc.first_date),
                                   sc.first_date)
    WINDOW w AS (ORDER BY x.stock_date)) AS r
WHERE r.stock_date >= sc.first_date
  AND (r.stored_value_change IS DISTINCT FROM r.value_change
       OR r.stored_percent_change IS DISTINCT FROM r.daily_percent_change);

ALTER TABLE stockload_recompute ADD PRIMARY KEY (row_id);
ANALYZE stockload_recompute;

UPDATE historical_stocks_data AS h
SET (value_change, daily_percent_change) =
    (SELECT c.value_change, c.daily_percent_change
     FROM stockload_recompute AS c
     WHERE c.row_id = h.ctid)
WHERE h.ctid = ANY (ARRAY(SELECT c.row_id FROM stockload_recompute AS c));

DROP TABLE stockload_recompute;
