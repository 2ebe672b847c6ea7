#!/usr/bin/env bash
# The data-quality checks on real daily bars that no one here wrote, shipped inside PyPI packages
# (downloaded with `pip download --no-deps`, nothing installed, nothing imported):
#
#   MSFT     pmdarima 2.1.1, pmdarima/datasets/data/msft.tar.gz: Microsoft 1986-03-13..2017-11-10,
#            split-adjusted, in the Date,Open,High,Low,Close,Volume,OpenInt layout we load
#   GOOG     backtesting 0.6.6, backtesting/test/GOOG.csv: Alphabet 2004-08-19..2013-03-01
#   SPX, NDX arch 8.0.0, arch/data/sp500 and arch/data/nasdaq: the S&P 500 and NASDAQ Composite
#            indexes 1999-01-04..2018-12-31
#   MSFTRAW  MSFT with its nine splits (1987..2003) undone: the real bars as an unadjusted source
#            would give them, so the split check meets real splits
#
#   scripts/quality-real.sh          loads them into a throwaway cluster, prints the flags per
#                                    10,000 rows per check and every flag
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
WORK=${QUALITY_REAL_DIR:-$CARGO_TARGET_DIR/quality-real}
mkdir -p "$WORK/wheels" "$WORK/x" "$WORK/batch/Stocks"
BIN=${STOCKLOAD:-}
if [ -z "$BIN" ]; then
  cargo build --quiet --bin stockload
  BIN=$CARGO_TARGET_DIR/debug/stockload
fi
[ -f "$WORK/wheels/.done" ] || {
  pip download --no-deps -q -d "$WORK/wheels" pmdarima==2.1.1 arch==8.0.0 backtesting==0.6.6
  touch "$WORK/wheels/.done"
}
for wheel in "$WORK"/wheels/*.whl; do
  python3 -m zipfile -e "$wheel" "$WORK/x"
done
tar xzf "$WORK/x/pmdarima/datasets/data/msft.tar.gz" -C "$WORK" msft.csv 2>/dev/null

python3 - "$WORK" <<'PY'
import csv, datetime, gzip, sys
work = sys.argv[1]
def write(name, rows):
    with open(f"{work}/batch/Stocks/{name}.csv", "w") as f:
        f.write("Date,Open,High,Low,Close,Volume,OpenInt\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + ",0\n")
msft = list(csv.DictReader(open(f"{work}/msft.csv")))
write("MSFT", [(r["Date"], r["Open"], r["High"], r["Low"], r["Close"], r["Volume"]) for r in msft])
write("GOOG", [r[:6] for r in csv.reader(open(f"{work}/x/backtesting/test/GOOG.csv")) if r[0]])
for name, path in [("SPX", "sp500/sp500.csv.gz"), ("NDX", "nasdaq/nasdaq.csv.gz")]:
    rows = []
    for r in csv.DictReader(gzip.open(f"{work}/x/arch/data/{path}", "rt")):
        day = datetime.datetime.strptime(r["Date"], "%m/%d/%Y").date()
        rows.append((day, r["Open"], r["High"], r["Low"], r["Close"], r["Volume"]))
    write(name, rows)
# Microsoft's splits (shares per old share), undone: prices before each are multiplied by it.
splits = [("1987-09-21", 2), ("1990-04-16", 2), ("1991-06-27", 1.5), ("1992-06-15", 1.5),
          ("1994-05-23", 2), ("1996-12-09", 2), ("1998-02-23", 2), ("1999-03-29", 2),
          ("2003-02-18", 2)]
raw = []
for r in msft:
    f = 1.0
    for day, ratio in splits:
        if r["Date"] < day:
            f *= ratio
    prices = [round(float(r[c]) * f, 4) for c in ("Open", "High", "Low", "Close")]
    raw.append((r["Date"], *prices, int(int(r["Volume"]) / f)))
write("MSFTRAW", raw)
open(f"{work}/batch/index.txt", "w").write(
    "'MSFT.csv', 'GOOG.csv', 'SPX.csv', 'NDX.csv', 'MSFTRAW.csv'\n")
PY

coproc PG { "$BIN" dev-postgres; }
read -r URL <&"${PG[0]}"
pg_in=${PG[1]}
trap 'exec {pg_in}>&-; wait "$PG_PID" 2>/dev/null || true' EXIT
DATABASE_URL=$URL "$BIN" load --source "$WORK/batch/Stocks" --companies "$WORK/batch/index.txt" \
  2>/dev/null | grep -E "rows:|quality:"
psql -qX "$URL" <<'SQL'
\echo flags per 10,000 rows, per check (MSFTRAW apart: it is MSFT unadjusted)
SELECT check_name, severity,
       round(count(*) FILTER (WHERE company_name <> 'MSFTRAW') * 10000.0
             / (SELECT count(*) FROM historical_stocks_data WHERE company_name <> 'MSFTRAW'), 2)
           AS per_10k_rows,
       count(*) FILTER (WHERE company_name = 'MSFTRAW') AS in_msftraw
FROM quality_flags GROUP BY 1, 2 ORDER BY 2, 1;
SELECT company_name, stock_date, check_name, detail FROM quality_flags ORDER BY 1, 2;
SQL
