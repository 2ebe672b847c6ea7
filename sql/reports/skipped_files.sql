-- Every file run $1 skipped, with its reason, named as in the index (the run's source folder
-- taken off the front). Read-only. Reads: load_rejects, load_runs.
SELECT CASE WHEN starts_with(j.file, r.source) THEN ltrim(substr(j.file, length(r.source) + 1), '/')
            ELSE j.file END AS file,
       j.reason
FROM load_rejects AS j
JOIN load_runs AS r ON r.id = j.run_id
WHERE j.run_id = $1 AND j.kind = 'file'
ORDER BY 1
