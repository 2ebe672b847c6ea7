"""The DuckDB approach to the same job, for scripts/bench.sh (not part of stockload).

    duckdb_load.py STOCKS_DIR INDEX_FILE OUT_CSV

Reads the listed company files with read_csv (bad rows ignored), computes value_change and
daily_percent_change with lag() per company (previous-close basis), and writes the final rows as
CSV in historical_stocks_data's column order; bench.sh then `\\copy`s that file into the table.
"""
import os
import re
import sys

import duckdb

stocks, index, out = sys.argv[1:]
names = [n.strip().strip("'\"") for n in re.split(r"[,\n]", open(index).read())]
files = []
for name in filter(None, names):
    path = os.path.join(stocks, name if name.endswith(".csv") else name + ".csv")
    if os.path.isfile(path) and os.path.getsize(path) > 0:
        files.append(path)

con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute(
    """
    CREATE TABLE rows AS
    SELECT regexp_extract(filename, '([^/]+)\\.csv$', 1) AS company_name,
           "Date" AS stock_date, "Open" AS open_value, "High" AS high_value, "Low" AS low_value,
           "Close" AS close_value, "Volume" AS volume_traded
    FROM read_csv(?, header = true, filename = true, ignore_errors = true, null_padding = false,
                  columns = {'Date': 'DATE', 'Open': 'DECIMAL(18,4)', 'High': 'DECIMAL(18,4)',
                             'Low': 'DECIMAL(18,4)', 'Close': 'DECIMAL(18,4)',
                             'Volume': 'BIGINT', 'OpenInt': 'BIGINT'})
    WHERE open_value >= 0 AND high_value >= 0 AND low_value >= 0 AND close_value >= 0
      AND volume_traded >= 0
    QUALIFY row_number() OVER (PARTITION BY company_name, stock_date ORDER BY stock_date) = 1
    """,
    [files],
)
con.execute(
    f"""
    COPY (
      SELECT stock_date, open_value, high_value, low_value, close_value, volume_traded,
             round((close_value - prev) / nullif(prev, 0) * 100, 6) AS daily_percent_change,
             close_value - prev AS value_change, company_name
      FROM (SELECT *, lag(close_value) OVER (PARTITION BY company_name ORDER BY stock_date) AS prev
            FROM rows)
    ) TO '{out}' (FORMAT csv, HEADER false)
    """
)
