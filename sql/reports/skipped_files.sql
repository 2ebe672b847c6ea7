-- Every file run $1 skipped, with its reason. Read-only. Reads: load_rejects.
SELECT regexp_replace(file, '^.*/', '') AS file, reason
FROM load_rejects
WHERE run_id = $1 AND kind = 'file'
ORDER BY file
