#!/usr/bin/env bash
# Benchmark: stockload end to end vs `psql \copy` of the same final rows, on one throwaway cluster.
#
#   scripts/bench.sh [LISTED]        (default 1000 listed of 7192 files, 2520 rows each)
#
# Reports seconds, rows/s and peak RSS (/usr/bin/time -v) for:
#   1. stockload load of the batch into an empty database;
#   2. psql \copy of the resulting rows (exported once to one CSV) into an empty table;
#   3. stockload load of a batch twice as large (RSS must stay flat).
# Set BENCH_S3=1 to also load the same batch from S3 (moto_server on loopback; see README).
set -euo pipefail
cd "$(dirname "$0")/.."

LISTED=${1:-1000}
FILES=${BENCH_FILES:-7192}
ROWS=${BENCH_ROWS:-2520}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/stockload-bench.XXXXXX)}
chmod 755 "$WORK"
TIME=/usr/bin/time
[ -x "$TIME" ] || { echo "bench needs GNU time: apt-get install time" >&2; exit 1; }
command -v psql >/dev/null || { echo "bench needs psql (postgresql-client)" >&2; exit 1; }

cargo build --release --quiet
BIN=$PWD/target/release/stockload

echo "generating $FILES files x $ROWS rows in $WORK ..."
[ -f "$WORK/batch/CompanyNames/top_companies.txt" ] ||
  "$BIN" sample --out "$WORK/batch" --files "$FILES" --listed "$LISTED" --rows "$ROWS" >/dev/null
mkdir -p "$WORK/double/CompanyNames"
"$BIN" sample --out "$WORK/double-src" --files 1 --rows 1 >/dev/null  # (layout only)
python3 - "$WORK" "$LISTED" <<'PY'
import sys, os
work, listed = sys.argv[1], int(sys.argv[2])
names = sorted(os.listdir(os.path.join(work, "batch", "Stocks")))[: 2 * listed]
with open(os.path.join(work, "double", "CompanyNames", "top_companies.txt"), "w") as f:
    f.write(", ".join(f"'{n}'" for n in names) + "\n")
PY

coproc PG { "$BIN" dev-postgres; }
read -r URL <&"${PG[0]}"
pg_in=${PG[1]}
cleanup() { exec {pg_in}>&-; wait "$PG_PID" 2>/dev/null || true; }
trap cleanup EXIT
base=${URL%/postgres}

measure() { # label, then command; prints "label seconds rss_kb"
  local label=$1; shift
  "$TIME" -v -o "$WORK/$label.time" "$@" >"$WORK/$label.out" 2>"$WORK/$label.err"
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/$label.time" |
    awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/$label.time")
  echo "$label $secs $rss"
}

for db in load_a copy_b load_double; do psql -qX "$URL" -c "CREATE DATABASE $db" >/dev/null; done
DATABASE_URL=$base/copy_b "$BIN" migrate >/dev/null

read -r _ s_load rss_load < <(DATABASE_URL=$base/load_a measure stockload \
  "$BIN" load --source "$WORK/batch/Stocks" --companies "$WORK/batch/CompanyNames/top_companies.txt" --json)
rows=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rows_loaded"])' "$WORK/stockload.out")
DATABASE_URL=$base/load_a "$BIN" export --to "$WORK/final.csv" >/dev/null
read -r _ s_copy rss_copy < <(measure psql_copy \
  psql -qX "$base/copy_b" -c "\\copy historical_stocks_data FROM '$WORK/final.csv' WITH (FORMAT csv)")
read -r _ s_double rss_double < <(DATABASE_URL=$base/load_double measure stockload_double \
  "$BIN" load --source "$WORK/batch/Stocks" --companies "$WORK/double/CompanyNames/top_companies.txt" --json)
rows_double=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["rows_loaded"])' "$WORK/stockload_double.out")

if [ "${BENCH_S3:-0}" = 1 ]; then
  read -r s_s3 rss_s3 < <(bash scripts/bench-s3.sh "$BIN" "$WORK" "$base")
fi

python3 - "$rows" "$s_load" "$rss_load" "$s_copy" "$rss_copy" "$rows_double" "$s_double" "$rss_double" "${s_s3:-}" "${rss_s3:-}" <<'PY'
import sys
rows, s_load, rss_load, s_copy, rss_copy, rows_d, s_d, rss_d, s_s3, rss_s3 = sys.argv[1:]
rows, rows_d = int(rows), int(rows_d)
s_load, s_copy, s_d = float(s_load), float(s_copy), float(s_d)
print(f"{'':28}{'rows':>10}{'seconds':>10}{'rows/s':>12}{'peak RSS':>12}")
print(f"{'stockload load':28}{rows:>10}{s_load:>10.2f}{rows/s_load:>12,.0f}{int(rss_load)/1024:>9.1f} MB")
copy_label = "psql \\copy (final rows)"
print(f"{copy_label:28}{rows:>10}{s_copy:>10.2f}{rows/s_copy:>12,.0f}{int(rss_copy)/1024:>9.1f} MB")
print(f"{'stockload load, 2x batch':28}{rows_d:>10}{s_d:>10.2f}{rows_d/s_d:>12,.0f}{int(rss_d)/1024:>9.1f} MB")
if s_s3:
    s_s3 = float(s_s3)
    print(f"{'stockload load from S3':28}{rows:>10}{s_s3:>10.2f}{rows/s_s3:>12,.0f}{int(rss_s3)/1024:>9.1f} MB")
    print(f"S3 / local: {s_s3/s_load:.2f}x (target <= 1.5x)")
print(f"stockload / psql copy: {s_load/s_copy:.2f}x (target <= 1.2x); RSS 2x batch / 1x: {int(rss_d)/int(rss_load):.2f}")
PY
echo "work folder: $WORK (remove it when done)"
