-- clear_staged.sql — the last step of a load into an empty table, after its quality checks.
-- Reads: setting stockload.run_id. Writes: removes this run's counts from stockload_work.run_scope
-- and run_days (stage_scope.sql wrote them; record_staged.sql and quality_checks.sql read them),
-- inside the load's transaction. A failed run's are removed by clear_work.sql.
DELETE FROM stockload_work.run_scope
WHERE run_id = current_setting('stockload.run_id')::bigint;

DELETE FROM stockload_work.run_days
WHERE run_id = current_setting('stockload.run_id')::bigint;
