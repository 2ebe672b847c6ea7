-- record_rejects.sql — step 2 of a load.
-- Reads: stockload_stage (its rejected rows and skipped files), setting stockload.run_id.
-- Writes: load_rejects, one row per skipped file and per rejected row of this run.
INSERT INTO load_rejects (run_id, kind, file, line, reason, raw_text)
SELECT current_setting('stockload.run_id')::bigint,
       s.reject_kind, s.source_file, s.line, s.reject_reason, s.raw_text
FROM stockload_stage AS s
WHERE s.reject_kind IS NOT NULL;
