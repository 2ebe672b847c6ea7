-- What an analyst checks first, as one row of text values.
SELECT count(*)::text                              AS rows,
       count(DISTINCT company_name)::text          AS companies,
       coalesce(min(stock_date)::text, '')         AS first_date,
       coalesce(max(stock_date)::text, '')         AS last_date,
       coalesce(sum(value_change)::text, '')       AS sum_value_change,
       coalesce(round(avg(value_change), 6)::text, '') AS mean_value_change,
       coalesce(round(avg(open_value), 6)::text, '')   AS mean_open_value,
       coalesce(round(avg(close_value), 6)::text, '')  AS mean_close_value,
       coalesce((SELECT status || ' (run ' || id || ', ' || coalesce(finished_at, started_at)::text || ')'
                 FROM load_runs ORDER BY id DESC LIMIT 1), 'no run yet') AS last_run
FROM historical_stocks_data
