#!/usr/bin/env bash
# Does a load's time grow linearly with its rows? On one throwaway cluster, loads a quarter, a
# half and all of a folder the size of the real one (7192 company files of 2520 days: ~18 M
# rows), each into an empty database after a CHECKPOINT, and prints seconds, rows per second and
# peak RSS for each, and each size's time per row relative to the quarter's.
#
#   scripts/bench-scale.sh [FILES]      (default 7192)
#
# BENCH_ROWS (2520 days per file), BENCH_DIR (work folder; the batch is kept there and reused).
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${1:-7192}
ROWS=${BENCH_ROWS:-2520}
source scripts/lib/bench.sh
bench_setup stockload-scale

if [ ! -f "$WORK/batch/CompanyNames/top_companies.txt" ]; then
  echo "generating $FILES files x $ROWS rows in $WORK ..."
  "$BIN" sample --out "$WORK/batch" --files "$FILES" --rows "$ROWS" >/dev/null
fi
STOCKS=$WORK/batch/Stocks
ls "$STOCKS" | sort >"$WORK/all.txt"
total=$(wc -l <"$WORK/all.txt")
for part in 4 2 1; do
  head -n $((total / part)) "$WORK/all.txt" >"$WORK/index.$part.txt"
done

bench_cluster

printf '\n%-10s%10s%12s%10s%14s%10s\n' files rows seconds "Mrows/s" "s per row vs" "peak RSS"
first=""
for part in 4 2 1; do
  db=scale_$part
  psql -qX "$URL" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
  DATABASE_URL=$base/$db "$BIN" migrate >/dev/null
  psql -qX "$URL" -c CHECKPOINT >/dev/null
  DATABASE_URL=$base/$db "$TIME" -v -o "$WORK/$db.time" "$BIN" load --source "$STOCKS" \
    --companies "$WORK/index.$part.txt" --json >"$WORK/$db.json" 2>"$WORK/$db.err" ||
    { tail -5 "$WORK/$db.err" >&2; exit 1; }
  read -r rows secs < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["rows_loaded"], d["duration_secs"])' "$WORK/$db.json")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/$db.time")
  per_row=$(python3 -c "print($secs / $rows)")
  [ -n "$first" ] || first=$per_row
  printf '%-10s%10s%12.2f%10.2f%13.2fx%7.1f MB\n' "$(wc -l <"$WORK/index.$part.txt")" "$rows" "$secs" \
    "$(python3 -c "print($rows / $secs / 1e6)")" "$(python3 -c "print($per_row / $first)")" \
    "$(python3 -c "print($rss / 1024)")"
  psql -qX "$URL" -c "DROP DATABASE $db" >/dev/null
done
echo "work folder: $WORK (remove it when done)"
