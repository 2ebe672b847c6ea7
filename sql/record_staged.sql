-- record_staged.sql — after the last chunk of a load into an empty table.
-- Reads: stockload_work.run_rejects and stockload_work.run_scope (what the staging session found
-- in this run's chunks: stage_rejects.sql, stage_scope.sql), setting stockload.run_id.
-- Writes: load_rejects (one row per skipped file and rejected row of this run) and
-- load_run_scope (each company's first loaded day), inside the load's transaction; then removes
-- this run's rejects from the work tables (its counts stay for quality_checks.sql, until
-- clear_staged.sql; a failed run's are removed by clear_work.sql).
INSERT INTO load_rejects (run_id, kind, file, line, reason, raw_text)
SELECT r.run_id, r.kind, r.file, r.line, r.reason, r.raw_text
FROM stockload_work.run_rejects AS r
WHERE r.run_id = current_setting('stockload.run_id')::bigint;

INSERT INTO load_run_scope (run_id, company_name, first_date)
SELECT s.run_id, s.company_name, s.first_date
FROM stockload_work.run_scope AS s
WHERE s.run_id = current_setting('stockload.run_id')::bigint;

DELETE FROM stockload_work.run_rejects
WHERE run_id = current_setting('stockload.run_id')::bigint;
