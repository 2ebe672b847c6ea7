-- What an analyst checks first, as one row of text values.
-- The last run is read in a subquery of its own beside the aggregates (not inside their SELECT
-- list), so the same text runs on Citus, which computes the aggregates on the workers.
SELECT t.rows, t.companies, t.first_date, t.last_date, t.sum_value_change, t.mean_value_change,
       t.mean_open_value, t.mean_close_value,
       coalesce(r.last_run, 'no run yet') AS last_run
FROM (SELECT count(*)::text                              AS rows,
       count(DISTINCT company_name)::text          AS companies,
       coalesce(min(stock_date)::text, '')         AS first_date,
       coalesce(max(stock_date)::text, '')         AS last_date,
       coalesce(sum(value_change)::text, '')       AS sum_value_change,
       coalesce(round(avg(value_change), 6)::text, '') AS mean_value_change,
       coalesce(round(avg(open_value), 6)::text, '')   AS mean_open_value,
       coalesce(round(avg(close_value), 6)::text, '')  AS mean_close_value
      FROM historical_stocks_data) AS t
LEFT JOIN (SELECT status || ' (run ' || id || ', ' || coalesce(finished_at, started_at)::text || ')' AS last_run
           FROM load_runs ORDER BY id DESC LIMIT 1) AS r ON true
