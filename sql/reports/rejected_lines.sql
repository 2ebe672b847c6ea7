-- The first $2 rejected rows of run $1, by file and line, raw text cut to $3 characters; files
-- named as in the index (the run's source folder taken off the front). Read-only.
-- Reads: load_rejects, load_runs.
SELECT CASE WHEN starts_with(j.file, r.source) THEN ltrim(substr(j.file, length(r.source) + 1), '/')
            ELSE j.file END AS file,
       j.line, j.reason,
       left(coalesce(j.raw_text, ''), $3) AS raw_text,
       length(coalesce(j.raw_text, '')) > $3 AS cut
FROM load_rejects AS j
JOIN load_runs AS r ON r.id = j.run_id
WHERE j.run_id = $1 AND j.kind = 'row'
ORDER BY 1, j.line
LIMIT $2
