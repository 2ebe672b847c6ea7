-- The quality flags of run $1 by check and severity. Read-only; run only when quality_flags
-- exists. Reads: quality_flags.
SELECT check_name::text, severity::text, count(*) AS rows
FROM quality_flags
WHERE run_id = $1
GROUP BY 1, 2
ORDER BY 3 DESC, 1, 2
