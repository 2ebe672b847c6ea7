-- The first $2 rejected rows of run $1, by file and line, raw text cut to $3 characters.
-- Read-only. Reads: load_rejects.
SELECT regexp_replace(file, '^.*/', '') AS file, line, reason,
       left(coalesce(raw_text, ''), $3) AS raw_text,
       length(coalesce(raw_text, '')) > $3 AS cut
FROM load_rejects
WHERE run_id = $1 AND kind = 'row'
ORDER BY file, line
LIMIT $2
