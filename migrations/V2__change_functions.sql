-- V2: the two formulas every transform script shares, defined once.
-- Plain IMMUTABLE SQL functions: the planner inlines them, so they cost nothing per row.

CREATE OR REPLACE FUNCTION stockload_value_change(
    basis text, open_value numeric, close_value numeric, previous_close numeric
) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN basis = 'intraday' THEN close_value - open_value
                ELSE close_value - previous_close END
$$;

CREATE OR REPLACE FUNCTION stockload_percent_change(
    basis text, open_value numeric, close_value numeric, previous_close numeric
) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN basis = 'intraday'
                THEN round((close_value - open_value) / NULLIF(open_value, 0) * 100, 6)
                ELSE round((close_value - previous_close) / NULLIF(previous_close, 0) * 100, 6) END
$$;

COMMENT ON FUNCTION stockload_value_change(text, numeric, numeric, numeric) IS
    'value_change for one row: intraday close - open, otherwise close - previous close (NULL without one).';
COMMENT ON FUNCTION stockload_percent_change(text, numeric, numeric, numeric) IS
    'daily_percent_change for one row, rounded to 6 decimals; NULL when the base price is missing or zero.';

-- Markers (.SUCCESS files, queue messages) whose batch was loaded: a restart never reruns one.
CREATE TABLE IF NOT EXISTS processed_markers (
    marker       text PRIMARY KEY,
    run_id       bigint REFERENCES load_runs (id) ON DELETE SET NULL,
    processed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE processed_markers IS
    'Trigger markers (.SUCCESS files, S3 events) already acted on, recorded in the same transaction as their load.';
