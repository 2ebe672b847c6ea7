-- Rejected rows of run $1 by kind of reason (the report's chart). Read-only.
-- Reads: load_rejects. A reason quotes the bad value and names lines and dates; those are
-- replaced ("…" for a quoted value, # for a number or date) so that one kind is one bar.
SELECT regexp_replace(regexp_replace(reason, '"([^"\\]|\\.)*"', '"…"', 'g'),
                      '[0-9][0-9.:-]*', '#', 'g') AS kind,
       count(*) AS rows
FROM load_rejects
WHERE run_id = $1 AND kind = 'row'
GROUP BY 1
ORDER BY 2 DESC, 1
