-- create_stage.sql — step 1 of a load, before COPY.
-- Reads: nothing. Writes: the temporary table stockload_stage (session-private, no WAL, dropped at
-- commit or rollback). stockload COPYs every row it read into it: rows to load (reject_kind NULL),
-- rejected rows (reject_kind 'row') and skipped files (reject_kind 'file').
CREATE TEMPORARY TABLE stockload_stage (
    company_name  text COLLATE "C" NOT NULL,
    line          bigint,
    stock_date    date,
    open_value    numeric,
    high_value    numeric,
    low_value     numeric,
    close_value   numeric,
    volume_traded bigint,
    reject_kind   text,
    reject_reason text,
    source_file   text,
    raw_text      text
) ON COMMIT DROP;
