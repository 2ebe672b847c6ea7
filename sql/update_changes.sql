-- update_changes.sql — step 5 of a load.
-- Reads: stockload_scope, historical_stocks_data, setting stockload.change_basis.
-- Writes: value_change and daily_percent_change of historical_stocks_data, only for the companies
-- whose batch reached back into days already stored (stockload_scope.needs_recompute), from the
-- batch's first day on, and only where the stored value differs. Under the previous-close basis
-- a changed or inserted day moves the next day's change too; the intraday basis needs no
-- neighbour, so insert_query.sql already wrote every affected row and this script does nothing.
--
-- Its cost is bounded by its work whatever the planner believes about historical_stocks_data
-- (whose statistics do not know the rows this transaction just wrote, and may be stale anyway):
--   1. the new values are computed per company that needs it (LATERAL: one index range scan per
--      company, from the stored day before the batch on) into a small temporary table; with no
--      such company nothing touches historical_stocks_data at all;
--   2. the table is updated by row address (ctid = ANY(array): a TID scan, never a join whose
--      order the planner could get wrong), each row's values looked up by that address.
CREATE TEMPORARY TABLE stockload_changes ON COMMIT DROP AS
SELECT r.row_id, r.value_change, r.daily_percent_change
FROM stockload_scope AS sc
CROSS JOIN LATERAL (
    SELECT x.ctid AS row_id, x.stock_date,
           x.value_change AS stored_value_change,
           x.daily_percent_change AS stored_percent_change,
           stockload_value_change('previous-close', x.open_value, x.close_value,
                                  lag(x.close_value) OVER w) AS value_change,
           stockload_percent_change('previous-close', x.open_value, x.close_value,
                                    lag(x.close_value) OVER w) AS daily_percent_change
    FROM historical_stocks_data AS x
    WHERE x.company_name = sc.company_name
      AND x.stock_date >= coalesce(sc.seed_date, sc.first_date)
    WINDOW w AS (ORDER BY x.stock_date)) AS r
WHERE sc.needs_recompute
  AND current_setting('stockload.change_basis') = 'previous-close'
  AND r.stock_date >= sc.first_date
  AND (r.stored_value_change IS DISTINCT FROM r.value_change
       OR r.stored_percent_change IS DISTINCT FROM r.daily_percent_change);

ALTER TABLE stockload_changes ADD PRIMARY KEY (row_id);
ANALYZE stockload_changes;

UPDATE historical_stocks_data AS h
SET (value_change, daily_percent_change) =
    (SELECT c.value_change, c.daily_percent_change
     FROM stockload_changes AS c
     WHERE c.row_id = h.ctid)
WHERE h.ctid = ANY (ARRAY(SELECT c.row_id FROM stockload_changes AS c));
