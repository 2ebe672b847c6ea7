-- stage_rejects.sql — the staging session notes a chunk's rejects (load into an empty table).
-- Runs on each chunk it staged, before committing it (the load's transaction then has less to
-- do per chunk).
-- Reads: stockload_stage (a view of the chunk: its rejected rows and skipped files), setting
-- stockload.run_id. Writes: stockload_work.run_rejects, one row per skipped file and rejected
-- row; record_staged.sql moves them into load_rejects inside the load's transaction.
INSERT INTO stockload_work.run_rejects (run_id, kind, file, line, reason, raw_text)
SELECT current_setting('stockload.run_id')::bigint,
       s.reject_kind, s.source_file, s.line, s.reject_reason, s.raw_text
FROM stockload_stage AS s
WHERE s.reject_kind IS NOT NULL;
