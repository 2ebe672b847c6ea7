-- Per company run $1 loaded (load_run_scope): the rows the table holds for it, its first and
-- last day, the run's first day and the rows from that day on (what the run wrote or
-- rewrote). Read-only. Reads: load_run_scope, historical_stocks_data.
SELECT s.company_name::text,
       count(h.stock_date) AS rows,
       coalesce(min(h.stock_date)::text, '') AS first_date,
       coalesce(max(h.stock_date)::text, '') AS last_date,
       s.first_date::text AS run_from,
       count(h.stock_date) FILTER (WHERE h.stock_date >= s.first_date) AS run_rows
FROM load_run_scope AS s
LEFT JOIN historical_stocks_data AS h ON h.company_name = s.company_name
WHERE s.run_id = $1
GROUP BY s.company_name, s.first_date
ORDER BY s.company_name
