-- stage_scope.sql — the staging session notes a chunk's first days (load into an empty table).
-- Runs on each chunk it staged, before committing it.
-- Reads: stockload_stage (a view of the chunk, which holds whole companies), setting
-- stockload.run_id. Writes: stockload_work.run_scope, each company's first loaded day (for the
-- scoped follow-up recompute_changes.sql); record_staged.sql moves them into load_run_scope
-- inside the load's transaction.
INSERT INTO stockload_work.run_scope (run_id, company_name, first_date)
SELECT current_setting('stockload.run_id')::bigint, s.company_name, min(s.stock_date)
FROM stockload_stage AS s
WHERE s.reject_kind IS NULL
GROUP BY s.company_name;
