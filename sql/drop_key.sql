-- drop_key.sql — before the first chunk of a load into an empty historical_stocks_data.
-- Reads: nothing. Writes: drops historical_stocks_data's primary key; add_key.sql builds it again
-- after the last chunk, in the same transaction: one sorted index build instead of one index
-- insertion per row. stockload runs it only after seeing the table empty under a SHARE lock (no
-- other writer can add rows meanwhile); dropping the key takes ACCESS EXCLUSIVE, so readers wait
-- for the commit instead of reading a half-loaded table, and a failure rolls back rows and key
-- together.
ALTER TABLE historical_stocks_data DROP CONSTRAINT historical_stocks_data_pkey;
