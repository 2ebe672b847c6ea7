-- The rejected rows of one run ($1), for the demo and for users reading a summary.
SELECT regexp_replace(file, '^.*/', '') AS file, line, reason
FROM load_rejects
WHERE run_id = $1 AND kind = 'row'
ORDER BY file, line
LIMIT $2
