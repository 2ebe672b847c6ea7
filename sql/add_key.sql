-- add_key.sql — after the last chunk of a load into an empty historical_stocks_data.
-- Reads: historical_stocks_data. Writes: its primary key (company_name, stock_date), dropped by
-- drop_key.sql. Two rows for one company and day cannot reach it (the index lists a company
-- once; the parser rejects a repeated date), but would fail here, and so fail the run, rather
-- than be stored.
ALTER TABLE historical_stocks_data
    ADD CONSTRAINT historical_stocks_data_pkey PRIMARY KEY (company_name, stock_date);
