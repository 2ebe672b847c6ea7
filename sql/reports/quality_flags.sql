-- The current quality flags (`stockload quality`), each filter optional: $1 the run that raised
-- them, $2 the check, $3 the severity; at most $4, in company, day and check order.
SELECT company_name, stock_date::text, check_name, severity, run_id, detail
FROM quality_flags
WHERE ($1::bigint IS NULL OR run_id = $1)
  AND ($2::text IS NULL OR check_name = $2)
  AND ($3::text IS NULL OR severity = $3)
ORDER BY company_name, stock_date, check_name
LIMIT $4
