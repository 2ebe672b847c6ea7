-- V7: data-quality flags (sql/quality_checks.sql writes them, inside each load's transaction) and
-- what each run found, per check.
CREATE TABLE IF NOT EXISTS quality_flags (
    company_name text COLLATE "C" NOT NULL,
    stock_date   date NOT NULL,
    check_name   text NOT NULL CHECK (check_name IN ('ohlc_inconsistent', 'nonpositive_price',
                                                     'unit_error', 'suspected_split', 'price_jump',
                                                     'stale_bar', 'missing_sessions')),
    severity     text NOT NULL CHECK (severity IN ('error', 'warning')),
    run_id       bigint NOT NULL,
    detail       text NOT NULL,
    PRIMARY KEY (company_name, stock_date, check_name)
);

COMMENT ON TABLE quality_flags IS
    'The current data-quality flags of the rows of historical_stocks_data (sql/quality_checks.sql): one row '
    'per flagged row and check. A later batch that corrects a row, or adds the context that changes a '
    'verdict, re-evaluates it: a fixed row loses its flag. Flags never change or drop loaded values.';
COMMENT ON COLUMN quality_flags.company_name IS 'Company of the flagged row (historical_stocks_data.company_name).';
COMMENT ON COLUMN quality_flags.stock_date IS 'Trading day of the flagged row (historical_stocks_data.stock_date).';
COMMENT ON COLUMN quality_flags.check_name IS
    'Which check raised it: ohlc_inconsistent, nonpositive_price, unit_error (errors); suspected_split, '
    'price_jump, stale_bar, missing_sessions (warnings). The README describes each.';
COMMENT ON COLUMN quality_flags.severity IS
    'error: the row cannot be right as written; warning: the row is unusual and worth a look.';
COMMENT ON COLUMN quality_flags.run_id IS
    'The load_runs.id of the run that raised the flag (kept while later runs reach the same verdict).';
COMMENT ON COLUMN quality_flags.detail IS 'What was seen, as a sentence with the observed values.';

CREATE TABLE IF NOT EXISTS quality_run_counts (
    run_id     bigint NOT NULL REFERENCES load_runs (id) ON DELETE CASCADE,
    check_name text NOT NULL,
    severity   text NOT NULL CHECK (severity IN ('error', 'warning')),
    flags      bigint NOT NULL,
    cleared    bigint NOT NULL,
    PRIMARY KEY (run_id, check_name)
);

COMMENT ON TABLE quality_run_counts IS
    'What each run''s quality checks found: one row per run and check (all seven, zeros included).';
COMMENT ON COLUMN quality_run_counts.run_id IS 'The run (load_runs.id).';
COMMENT ON COLUMN quality_run_counts.check_name IS 'The check (as quality_flags.check_name).';
COMMENT ON COLUMN quality_run_counts.severity IS 'error or warning (as quality_flags.severity).';
COMMENT ON COLUMN quality_run_counts.flags IS
    'Flags of this check on the days the run loaded (each company''s days from its first loaded day on), '
    'after the run.';
COMMENT ON COLUMN quality_run_counts.cleared IS
    'Flags of this check the run removed: rows it corrected, or whose verdict changed with its context.';

-- A day quoted about `factor` times (or 1/factor) off both neighbours, which agree with each
-- other: quality_checks.sql asks it of each day and of the day before (a plain IMMUTABLE SQL
-- function: the planner inlines it).
CREATE OR REPLACE FUNCTION stockload_unit_error(
    before double precision, day double precision, after double precision,
    factor double precision, tolerance double precision, agreement double precision
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN before > 0 AND day > 0 AND after > 0
                THEN abs(ln(before / after)) <= ln(agreement)
                     AND abs(abs(ln(day / before)) - ln(factor)) <= ln(tolerance)
                     AND abs(abs(ln(day / after)) - ln(factor)) <= ln(tolerance)
           END
$$;

COMMENT ON FUNCTION stockload_unit_error(double precision, double precision, double precision,
                                         double precision, double precision, double precision) IS
    'True when `day` is about factor× (or 1/factor) both `before` and `after`, which agree within '
    'agreement× of each other (a price quoted in cents for dollars); NULL when a price is missing.';
