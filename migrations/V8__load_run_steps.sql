-- V8: each run's steps with their timings (for the run report's timeline), and the stockload
-- version that made the run.
CREATE TABLE IF NOT EXISTS load_run_steps (
    run_id   bigint NOT NULL REFERENCES load_runs (id) ON DELETE CASCADE,
    position integer NOT NULL,
    step     text NOT NULL,
    checksum text,
    rows     bigint NOT NULL DEFAULT 0,
    millis   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, position)
);

COMMENT ON TABLE load_run_steps IS
    'The steps of each run in the order they finished (the transform scripts, by file name), with the '
    'rows each changed and its time: the run report''s timeline. A failed run keeps the steps done before it failed.';
COMMENT ON COLUMN load_run_steps.position IS 'Order of the step within its run, from 1.';
COMMENT ON COLUMN load_run_steps.step IS 'What ran: a script of sql/ by file name (citus/ forms with their folder).';
COMMENT ON COLUMN load_run_steps.checksum IS 'First 12 hex digits of the SHA-256 of the script text that ran.';
COMMENT ON COLUMN load_run_steps.rows IS 'Rows the step changed (a script run once per chunk: the total).';
COMMENT ON COLUMN load_run_steps.millis IS 'Wall time of the step in milliseconds (a script run once per chunk: the total).';

ALTER TABLE load_runs ADD COLUMN IF NOT EXISTS stockload_version text;
COMMENT ON COLUMN load_runs.stockload_version IS 'Version of the stockload binary that made the run (NULL before V8).';
