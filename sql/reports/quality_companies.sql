-- The number of flags run $1 raised per company. Read-only; run only when quality_flags
-- exists. Reads: quality_flags.
SELECT company_name::text, count(*) AS flags
FROM quality_flags
WHERE run_id = $1
GROUP BY 1
