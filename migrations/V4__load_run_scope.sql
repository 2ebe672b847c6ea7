-- V4: what each run touched, so the follow-up (sql/recompute_changes.sql) can be scoped to it.
CREATE TABLE IF NOT EXISTS load_run_scope (
    run_id       bigint NOT NULL REFERENCES load_runs (id) ON DELETE CASCADE,
    company_name text COLLATE "C" NOT NULL,
    first_date   date NOT NULL,
    PRIMARY KEY (run_id, company_name)
);

COMMENT ON TABLE load_run_scope IS
    'Per run and company: the earliest day the run loaded. Changes can only have moved from that day on, '
    'so recompute_changes.sql recomputes just these ranges.';
COMMENT ON COLUMN load_run_scope.first_date IS 'The run''s earliest loaded day for the company.';
