#!/usr/bin/env bash
# Benchmark: the same batch loaded into single-node PostgreSQL and into a Citus cluster of a
# coordinator and two workers, all on this machine (so it shows Citus's overhead and the shape
# of the work, not a speed-up: the "cluster" shares this machine's cores and disk).
#
#   scripts/bench-citus.sh [LISTED]   (default 1000 listed files of 2520 rows, faults included:
#                                      the standard batch of scripts/bench.sh)
#
# For each engine, REPS times in alternation (medians printed, and the ratio Citus / single):
#   first    `stockload load` of the batch into an empty table
#   rerun    the same batch again (every day already stored: the upsert + recompute path)
#   follow   the scoped follow-up after it (sql/recompute_changes.sql, or its sql/citus/ form)
# Both tables are compared row for row at the end. Needs Citus (scripts/citus-build.sh) and
# psql. BENCH_REPS (default 3), BENCH_ROWS (2520), BENCH_DIR (work folder), BENCH_BIN (a
# stockload binary to use instead of the release build).
set -euo pipefail
cd "$(dirname "$0")/.."

LISTED=${1:-1000}
FILES=$((2 * LISTED))
ROWS=${BENCH_ROWS:-2520}
REPS=${BENCH_REPS:-3}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/stockload-bench-citus.XXXXXX)}
mkdir -p "$WORK"
chmod 755 "$WORK"
command -v psql >/dev/null || { echo "bench needs psql (postgresql-client)" >&2; exit 1; }
[ -f "$(pg_config --pkglibdir)/citus.so" ] || { echo "Citus is not installed: run scripts/citus-build.sh" >&2; exit 1; }

export PGOPTIONS="-c client_min_messages=warning"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$BENCH_BIN # e.g. a debug build, to try the script quickly
else
  cargo build --release --quiet --bin stockload
  BIN=$CARGO_TARGET_DIR/release/stockload
fi

if [ ! -f "$WORK/batch/CompanyNames/top_companies.txt" ]; then
  echo "generating $FILES files x $ROWS rows in $WORK ..."
  "$BIN" sample --out "$WORK/batch" --files "$FILES" --listed "$LISTED" --rows "$ROWS" --faulty >/dev/null
fi
STOCKS=$WORK/batch/Stocks
INDEX=$WORK/batch/CompanyNames/top_companies.txt

# Two throwaway servers; each goes away when its stdin closes.
coproc PG { "$BIN" dev-postgres; }
read -r PG_URL <&"${PG[0]}"
pg_in=${PG[1]}
rm -f "$WORK/citus.in" "$WORK/citus.url"
mkfifo "$WORK/citus.in"
"$BIN" dev-postgres --citus-workers 2 <"$WORK/citus.in" >"$WORK/citus.url" 2>"$WORK/citus.err" &
CITUS_PID=$!
exec {citus_in}>"$WORK/citus.in"
cleanup() {
  exec {pg_in}>&- {citus_in}>&-
  wait "$PG_PID" "$CITUS_PID" 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 600); do # up to 2 minutes for three initdb + citus set-up
  [ -s "$WORK/citus.url" ] && break
  kill -0 "$CITUS_PID" 2>/dev/null || { cat "$WORK/citus.err" >&2; exit 1; }
  sleep 0.2
done
read -r CITUS_URL <"$WORK/citus.url"
SINGLE_URL=${PG_URL%/postgres}/single
DATABASE_URL=$CITUS_URL "$BIN" migrate --distributed >/dev/null

seconds() { # label url command... ; appends "label seconds" to $WORK/results
  local label=$1 url=$2; shift 2
  local start end
  start=$(date +%s.%N)
  DATABASE_URL=$url "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" ||
    { echo "$label failed:" >&2; tail -5 "$WORK/$label.err" >&2; exit 1; }
  end=$(date +%s.%N)
  echo "$label $(echo "$end - $start" | bc)" >>"$WORK/results"
}
rm -f "$WORK/results"
for rep in $(seq "$REPS"); do
  echo "round $rep of $REPS ..."
  psql -qX "$PG_URL" -c "DROP DATABASE IF EXISTS single" -c "CREATE DATABASE single" >/dev/null
  DATABASE_URL=$SINGLE_URL "$BIN" migrate >/dev/null
  psql -qX "$CITUS_URL" -c "TRUNCATE historical_stocks_data, load_runs CASCADE" >/dev/null
  for engine in single citus; do
    if [ "$engine" = single ]; then url=$SINGLE_URL; follow=sql/recompute_changes.sql
    else url=$CITUS_URL; follow=sql/citus/recompute_changes.sql; fi
    seconds "$engine-first" "$url" "$BIN" load --source "$STOCKS" --companies "$INDEX" --json
    seconds "$engine-rerun" "$url" "$BIN" load --source "$STOCKS" --companies "$INDEX" --json
    seconds "$engine-follow" "$url" psql -qX -v ON_ERROR_STOP=1 "$url" -f "$follow"
  done
done

single_rows=$(psql -qXtA "$SINGLE_URL" -c "SELECT count(*) FROM historical_stocks_data")
psql -qX "$SINGLE_URL" -c "\\copy (SELECT * FROM historical_stocks_data ORDER BY company_name, stock_date) TO '$WORK/single.csv' CSV"
psql -qX "$CITUS_URL" -c "\\copy (SELECT * FROM historical_stocks_data ORDER BY company_name, stock_date) TO '$WORK/citus.csv' CSV"
if cmp -s "$WORK/single.csv" "$WORK/citus.csv"; then same="identical"; else same="DIFFERENT"; fi
echo "rows: $single_rows; single-node and Citus tables: $same"
echo "nodes: $(psql -qXtA "$CITUS_URL" -c "SELECT count(*) FROM citus_get_active_worker_nodes()") workers," \
  "$(psql -qXtA "$CITUS_URL" -c "SELECT count(*) FROM citus_shards WHERE table_name = 'historical_stocks_data'::regclass") shards"

python3 - "$WORK/results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, secs = line.split()
    runs[label].append(float(secs))
print(f"\n{'':8}{'single s':>10}{'citus s':>10}{'citus/single':>14}   (medians of {len(runs['single-first'])})")
for step in ["first", "rerun", "follow"]:
    s, c = statistics.median(runs[f"single-{step}"]), statistics.median(runs[f"citus-{step}"])
    print(f"{step:8}{s:>10.2f}{c:>10.2f}{c / s:>13.2f}x")
PY
