-- The first $2 rows run $1 flagged, by company and day. Read-only; run only when quality_flags
-- exists. Reads: quality_flags.
SELECT company_name::text, coalesce(stock_date::text, '') AS stock_date, check_name::text,
       severity::text, coalesce(detail::text, '') AS detail
FROM quality_flags
WHERE run_id = $1
ORDER BY company_name, stock_date, check_name
LIMIT $2
