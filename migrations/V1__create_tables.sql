-- V1: the data table, the run ledger and the rejects ledger.
-- Runnable unchanged by `refinery migrate -e DATABASE_URL -p migrations` and embedded in `stockload`.

CREATE TABLE IF NOT EXISTS historical_stocks_data (
    stock_date           date     NOT NULL,
    open_value           numeric  NOT NULL,
    high_value           numeric  NOT NULL,
    low_value            numeric  NOT NULL,
    close_value          numeric  NOT NULL,
    volume_traded        bigint   NOT NULL,
    daily_percent_change numeric,
    value_change         numeric,
    -- "C" collation: tickers are ASCII, and byte order keeps the key sort cheap on RDS's en_US default.
    company_name         text COLLATE "C" NOT NULL,
    CONSTRAINT historical_stocks_data_pkey PRIMARY KEY (company_name, stock_date)
);

COMMENT ON TABLE historical_stocks_data IS
    'Daily stock prices, one row per company and trading day, loaded by stockload from per-company CSV files.';
COMMENT ON COLUMN historical_stocks_data.stock_date IS 'Trading day (the CSV Date column).';
COMMENT ON COLUMN historical_stocks_data.open_value IS 'Opening price (CSV Open), exactly as written in the file.';
COMMENT ON COLUMN historical_stocks_data.high_value IS 'Highest price of the day (CSV High).';
COMMENT ON COLUMN historical_stocks_data.low_value IS 'Lowest price of the day (CSV Low).';
COMMENT ON COLUMN historical_stocks_data.close_value IS 'Closing price (CSV Close).';
COMMENT ON COLUMN historical_stocks_data.volume_traded IS 'Shares traded that day (CSV Volume).';
COMMENT ON COLUMN historical_stocks_data.daily_percent_change IS
    'value_change as a percentage of its base, rounded to 6 decimals: previous-close basis (default) '
    'value_change / previous close * 100; intraday basis (close - open) / open * 100. NULL when the base is '
    'missing (a company''s first day) or zero.';
COMMENT ON COLUMN historical_stocks_data.value_change IS
    'Price change of the day: previous-close basis (default) close - previous close of the same company; '
    'intraday basis close - open. NULL on a company''s first day under the previous-close basis.';
COMMENT ON COLUMN historical_stocks_data.company_name IS
    'Company ticker: the index file entry without its extension (AAPL.csv -> AAPL).';

CREATE TABLE IF NOT EXISTS load_runs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    started_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at    timestamptz,
    source         text NOT NULL,
    companies_file text NOT NULL,
    change_basis   text NOT NULL CHECK (change_basis IN ('previous-close', 'intraday')),
    files_listed   integer NOT NULL DEFAULT 0,
    files_loaded   integer NOT NULL DEFAULT 0,
    files_skipped  integer NOT NULL DEFAULT 0,
    rows_read      bigint NOT NULL DEFAULT 0,
    rows_loaded    bigint NOT NULL DEFAULT 0,
    rows_rejected  bigint NOT NULL DEFAULT 0,
    status         text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    error          text,
    scripts        text
);

COMMENT ON TABLE load_runs IS 'One row per attempted stockload run: what it read, what it loaded, how it ended.';
COMMENT ON COLUMN load_runs.source IS 'Folder or s3:// prefix the company files were read from.';
COMMENT ON COLUMN load_runs.companies_file IS 'Index file naming the companies of the batch.';
COMMENT ON COLUMN load_runs.change_basis IS 'previous-close or intraday: how value_change was computed.';
COMMENT ON COLUMN load_runs.rows_read IS 'Data lines read from loaded files; always rows_loaded + rows_rejected.';
COMMENT ON COLUMN load_runs.status IS 'running, succeeded or failed. A failed run rolled back all of its data.';
COMMENT ON COLUMN load_runs.error IS 'Why a failed run failed (never contains a password).';
COMMENT ON COLUMN load_runs.scripts IS 'The transform scripts the run executed, as name:checksum pairs.';

CREATE TABLE IF NOT EXISTS load_rejects (
    run_id   bigint NOT NULL REFERENCES load_runs (id) ON DELETE CASCADE,
    kind     text NOT NULL CHECK (kind IN ('file', 'row')),
    file     text NOT NULL,
    line     bigint,
    reason   text NOT NULL,
    raw_text text
);

CREATE INDEX IF NOT EXISTS load_rejects_run_id_idx ON load_rejects (run_id);

COMMENT ON TABLE load_rejects IS
    'What a run did not load and why: skipped files (kind file, line NULL) and rejected rows (kind row).';
COMMENT ON COLUMN load_rejects.line IS 'Line number in the CSV file, counting the header as line 1.';
COMMENT ON COLUMN load_rejects.raw_text IS 'The rejected line as read (for rows), so it can be fixed and reloaded.';
