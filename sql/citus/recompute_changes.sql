-- citus/recompute_changes.sql — standalone on Citus (instead of recompute_changes.sql): the
-- follow-up after a load, from psql/pgAdmin or Data Pipeline's SqlActivity.
-- Reads: load_runs, load_run_scope (reference tables), historical_stocks_data; optional setting
-- stockload.recompute_run (a load_runs.id; default: the last succeeded run).
-- Writes: value_change and daily_percent_change of historical_stocks_data, only within what that
-- run touched: for each of its companies, the days from its first loaded day on, recomputed
-- with a window seeded by the stored day before, under the run's change basis; only rows whose
-- stored value differs are written. Cost: O(the run's days), not O(table).
-- One UPDATE joined on the key: the reference tables have a copy on every worker and the window
-- is PARTITION BY company_name, so each shard is updated on its worker. Works in autocommit
-- (Citus commits the shards with two-phase commit) or inside a transaction.
-- The run is chosen first, on the coordinator (a MATERIALIZED CTE without distributed tables is
-- evaluated there): a session's SET stockload.recompute_run is not seen on the workers.
WITH target AS MATERIALIZED (
    SELECT coalesce(nullif(current_setting('stockload.recompute_run', true), '')::bigint,
                    (SELECT max(l.id) FROM load_runs AS l WHERE l.status = 'succeeded')) AS run_id
)
UPDATE historical_stocks_data AS h
SET value_change = c.value_change,
    daily_percent_change = c.daily_percent_change
FROM (SELECT x.company_name, x.stock_date, sc.first_date,
             x.value_change AS stored_value_change,
             x.daily_percent_change AS stored_percent_change,
             stockload_value_change(sc.basis, x.open_value, x.close_value,
                                    lag(x.close_value) OVER w) AS value_change,
             stockload_percent_change(sc.basis, x.open_value, x.close_value,
                                      lag(x.close_value) OVER w) AS daily_percent_change
      FROM (SELECT s.company_name, s.first_date, run.change_basis AS basis
            FROM load_runs AS run
            JOIN load_run_scope AS s ON s.run_id = run.id
            JOIN target ON target.run_id = run.id
           ) AS sc
      -- The run's first row of the company (always stored after the run) anchors the company
      -- on its shard, so the seed lookup and the window join distributed tables on company_name.
      JOIN historical_stocks_data AS f
        ON f.company_name = sc.company_name AND f.stock_date = sc.first_date
      LEFT JOIN LATERAL (SELECT y.stock_date
                         FROM historical_stocks_data AS y
                         WHERE y.company_name = f.company_name
                           AND y.stock_date < f.stock_date
                         ORDER BY y.stock_date DESC
                         LIMIT 1) AS seed ON true
      JOIN historical_stocks_data AS x
        ON x.company_name = f.company_name
       AND x.stock_date >= coalesce(seed.stock_date, f.stock_date)
      WINDOW w AS (PARTITION BY x.company_name ORDER BY x.stock_date)) AS c
WHERE h.company_name = c.company_name
  AND h.stock_date = c.stock_date
  AND c.stock_date >= c.first_date
  AND (c.stored_value_change IS DISTINCT FROM c.value_change
       OR c.stored_percent_change IS DISTINCT FROM c.daily_percent_change);
