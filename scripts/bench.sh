#!/usr/bin/env bash
# Benchmark, on one throwaway cluster, each pair run in alternation (REPS times, medians):
#
#   scripts/bench.sh [LISTED]        (default 1000 listed files of 2520 rows, faults included)
#
#   stockload        `stockload load` of the batch into an empty database (release build)
#   no-checks        the same load without the data-quality checks (--sql-dir: a copy of sql/ as
#                    before them, scripts/lib/bench.sh); which of the two goes first alternates
#   copy             psql `\copy` of stockload's own final rows into the same empty keyed table:
#                    the design's limit
#   duckdb           a DuckDB script (scripts/bench/duckdb_load.py: read_csv over the listed files,
#                    lag() per company, CSV out) + `\copy` into the same table
#   plain            awk concat -> `\copy` into a text staging table -> INSERT…SELECT with lag()
#   baseline         with BENCH_BASELINE=/path/to/another/stockload: that binary, same alternation
#   double           stockload with twice the listed files (time ~2x, peak RSS flat)
#   day / rerun      a daily append (1 new day x LISTED companies into the loaded table), then the
#                    same day loaded again (the backfill path)
#   follow-up        sql/recompute_changes.sql after that run (scoped), and the whole-table
#                    sql/recompute_all_changes.sql for comparison
#
# Prints seconds, peak RSS (/usr/bin/time -v), each ratio, and where stockload's time went
# (its per-script timers). Every measured command starts after a CHECKPOINT. DuckDB is installed
# from PyPI into the bench's own venv (target/bench-venv). BENCH_REPS (default 3), BENCH_ROWS (2520), BENCH_DIR (work folder).
set -euo pipefail
cd "$(dirname "$0")/.."

LISTED=${1:-1000}
FILES=$((2 * LISTED))
ROWS=${BENCH_ROWS:-2520}
REPS=${BENCH_REPS:-3}
source scripts/lib/bench.sh
bench_setup stockload-bench
VENV=$CARGO_TARGET_DIR/bench-venv
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import duckdb' 2>/dev/null || "$VENV/bin/pip" install -q duckdb

if [ ! -f "$WORK/batch/CompanyNames/top_companies.txt" ]; then
  echo "generating $FILES files x $ROWS rows in $WORK ..."
  "$BIN" sample --out "$WORK/batch" --files "$FILES" --listed "$LISTED" --rows "$ROWS" --faulty >/dev/null
fi
STOCKS=$WORK/batch/Stocks
INDEX=$WORK/batch/CompanyNames/top_companies.txt
"$VENV/bin/python" - "$WORK" "$LISTED" <<'PY'
import os, re, sys, datetime
work, listed = sys.argv[1], int(sys.argv[2])
stocks = os.path.join(work, "batch", "Stocks")
index = open(os.path.join(work, "batch", "CompanyNames", "top_companies.txt")).read()
names = [n.strip().strip("'") for n in re.split(r"[,\n]", index) if n.strip()]
every = sorted(n for n in os.listdir(stocks) if not n.startswith("Z"))
with open(os.path.join(work, "double.txt"), "w") as f:       # twice the companies
    f.write(", ".join(f"'{n}'" for n in every[: 2 * listed] + [n for n in names if n.startswith("Z")]) + "\n")
# One new trading day per listed company, after the last day of its file.
os.makedirs(os.path.join(work, "day", "Stocks"), exist_ok=True)
day_names = []
for name in names:
    path = os.path.join(stocks, name)
    if name.startswith("Z") or not os.path.isfile(path):
        continue
    last = open(path).read().rstrip("\n").rsplit("\n", 1)[-1].split(",")
    d = datetime.date.fromisoformat(last[0]) + datetime.timedelta(days=1)
    while d.weekday() >= 5:
        d += datetime.timedelta(days=1)
    close = float(last[4])
    with open(os.path.join(work, "day", "Stocks", name), "w") as f:
        f.write("Date,Open,High,Low,Close,Volume,OpenInt\n")
        f.write(f"{d},{close:.4f},{close*1.01:.4f},{close*0.99:.4f},{close*1.005:.4f},123456,0\n")
    day_names.append(name)
with open(os.path.join(work, "day", "index.txt"), "w") as f:
    f.write(", ".join(f"'{n}'" for n in day_names) + "\n")
with open(os.path.join(work, "day", "date"), "w") as f:
    f.write(f"{d}\n")
PY

bench_cluster
bench_sql_without_checks "$WORK/sql-none"

measure() { # label command... ; appends "label seconds rss_kb" to $WORK/results
  local label=$1; shift
  # Each measured command starts from a checkpoint: none pays for the dirty buffers and WAL the
  # previous one left (which made the doubled batch look superlinear).
  psql -qX "$URL" -c CHECKPOINT >/dev/null
  "$TIME" -v -o "$WORK/$label.time" "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" ||
    { echo "$label failed:" >&2; tail -5 "$WORK/$label.err" >&2; exit 1; }
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/$label.time" |
    awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/$label.time")
  echo "${label%%.*} $secs $rss" >>"$WORK/results"
}
newdb() { # name: an empty database with the schema
  psql -qX "$URL" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
  DATABASE_URL=$base/$1 "$BIN" migrate >/dev/null
}
load() { # db label index [more load arguments]
  local db=$1 label=$2 index=$3; shift 3
  DATABASE_URL=$base/$db measure "$label" "$BIN" load --source "$STOCKS" --companies "$index" --json "$@"
}

# stockload's own final rows, once, for the \copy limit.
newdb warm
DATABASE_URL=$base/warm "$BIN" load --source "$STOCKS" --companies "$INDEX" >/dev/null 2>&1
DATABASE_URL=$base/warm "$BIN" export --to "$WORK/final.csv" >/dev/null
psql -qX "$URL" -c "DROP DATABASE warm" >/dev/null
rm -f "$WORK/results"

cat >"$WORK/plain.sh" <<EOF
set -e
cd "$STOCKS"
names=\$(tr ',' '\n' <"$INDEX" | tr -d " '\r" | grep . | while read -r n; do if [ -f "\$n" ]; then echo "\$n"; fi; done)
LC_ALL=C awk -F, 'FNR > 1 && NF == 7 && \$0 !~ /[\200-\377]/ { f = FILENAME; sub(/\.csv\$/, "", f); print f "," \$0 }' \$names >"$WORK/plain.csv"
psql -qX -v ON_ERROR_STOP=1 "\$1" <<'SQL'
BEGIN;
CREATE TEMP TABLE raw (company text COLLATE "C", d text, o text, h text, l text, c text, v text, oi text) ON COMMIT DROP;
\copy raw FROM '$WORK/plain.csv' WITH (FORMAT csv)
INSERT INTO historical_stocks_data
SELECT d, o, h, l, c, v, round((c - prev) / nullif(prev, 0) * 100, 6), c - prev, company
FROM (SELECT company, d, o, h, l, c, v, lag(c) OVER (PARTITION BY company ORDER BY d) AS prev
      FROM (SELECT DISTINCT ON (company, d) company, d::date AS d, o::numeric AS o, h::numeric AS h,
                   l::numeric AS l, c::numeric AS c, v::bigint AS v
            FROM raw
            WHERE d ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$'
              AND o ~ '^\d+(\.\d+)?$' AND h ~ '^\d+(\.\d+)?$' AND l ~ '^\d+(\.\d+)?$'
              AND c ~ '^\d+(\.\d+)?$' AND v ~ '^\d+$'
            ORDER BY company, d) AS t) AS w;
COMMIT;
SQL
EOF

cat >"$WORK/duckdb.sh" <<EOF
set -e
"$VENV/bin/python" "$PWD/scripts/bench/duckdb_load.py" "$STOCKS" "$INDEX" "$WORK/duck.csv"
psql -qX -v ON_ERROR_STOP=1 "\$1" -c "\\copy historical_stocks_data FROM '$WORK/duck.csv' WITH (FORMAT csv)"
EOF

for rep in $(seq "$REPS"); do
  echo "round $rep of $REPS ..."
  for db in s n c d p; do newdb "${db}_$rep"; done
  if [ $((rep % 2)) = 1 ]; then
    load "s_$rep" "stockload.$rep" "$INDEX"
    load "n_$rep" "no-checks.$rep" "$INDEX" --sql-dir "$WORK/sql-none"
  else
    load "n_$rep" "no-checks.$rep" "$INDEX" --sql-dir "$WORK/sql-none"
    load "s_$rep" "stockload.$rep" "$INDEX"
  fi
  psql -qX "$URL" -c "DROP DATABASE n_$rep" >/dev/null
  if [ -n "${BENCH_BASELINE:-}" ]; then # another stockload binary, e.g. a build of the previous commit
    psql -qX "$URL" -c "CREATE DATABASE b_$rep" >/dev/null
    DATABASE_URL=$base/b_$rep "$BENCH_BASELINE" migrate >/dev/null  # its own migrations
    DATABASE_URL=$base/b_$rep measure "baseline.$rep" "$BENCH_BASELINE" load --source "$STOCKS" --companies "$INDEX" --json
    psql -qX "$URL" -c "DROP DATABASE b_$rep" >/dev/null
  fi
  measure "copy.$rep" psql -qX "$base/c_$rep" -c "\\copy historical_stocks_data FROM '$WORK/final.csv' WITH (FORMAT csv)"
  measure "duckdb.$rep" bash "$WORK/duckdb.sh" "$base/d_$rep"
  measure "plain.$rep" bash "$WORK/plain.sh" "$base/p_$rep"
  newdb "x_$rep"
  load "x_$rep" "double.$rep" "$WORK/double.txt"
  psql -qX "$URL" -c "DROP DATABASE x_$rep" >/dev/null
  [ "$rep" = "$REPS" ] || psql -qX "$URL" -c "DROP DATABASE c_$rep" -c "DROP DATABASE d_$rep" -c "DROP DATABASE p_$rep" >/dev/null
done
cp "$WORK/stockload.$REPS.out" "$WORK/stockload.json"

# Daily operation on the table holding the batch (the last stockload database).
for rep in $(seq "$REPS"); do
  psql -qX "$base/s_$REPS" -c "DELETE FROM historical_stocks_data WHERE stock_date = '$(cat "$WORK/day/date")'" >/dev/null
  STOCKS=$WORK/day/Stocks load "s_$REPS" "day.$rep" "$WORK/day/index.txt"
  STOCKS=$WORK/day/Stocks load "s_$REPS" "rerun.$rep" "$WORK/day/index.txt"
  measure "follow-up.$rep" psql -qX -v ON_ERROR_STOP=1 "$base/s_$REPS" -f sql/recompute_changes.sql
  measure "follow-up-all.$rep" psql -qX -v ON_ERROR_STOP=1 "$base/s_$REPS" -f sql/recompute_all_changes.sql
done
rows=$(psql -qXtA "$base/s_$REPS" -c "SELECT count(*) FROM historical_stocks_data")
for db in c d p; do
  echo "rows loaded by $db: $(psql -qXtA "$base/${db}_$REPS" -c "SELECT count(*) FROM historical_stocks_data")"
done

"$VENV/bin/python" - "$WORK" "$rows" <<'PY'
import json, statistics, sys, collections
work, rows = sys.argv[1], int(sys.argv[2])
runs = collections.defaultdict(list)
for line in open(f"{work}/results"):
    label, secs, rss = line.split()
    runs[label].append((float(secs), int(rss)))
med = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
rss = {k: max(r for _, r in v) / 1024 for k, v in runs.items()}
print(f"\n{'':16}{'median s':>10}{'runs':>6}{'peak RSS':>12}")
for k in ["stockload", "no-checks", "baseline", "copy", "duckdb", "plain", "double", "day", "rerun", "follow-up", "follow-up-all"]:
    if k in med:
        print(f"{k:16}{med[k]:>10.2f}{len(runs[k]):>6}{rss[k]:>9.1f} MB")
print()
s = med["stockload"]
print(f"stockload / no-checks  {s / med['no-checks']:.2f}x   (the data-quality checks' cost; goal <= 1.15x)")
print(f"stockload / copy    {s / med['copy']:.2f}x   (goal <= 1.2x; without the checks: {med['no-checks'] / med['copy']:.2f}x)")
print(f"stockload / duckdb  {s / med['duckdb']:.2f}x   (goal < 1)")
print(f"stockload / plain   {s / med['plain']:.2f}x")
if "baseline" in med:
    print(f"stockload / baseline {s / med['baseline']:.2f}x")
print(f"double / stockload  {med['double'] / s:.2f}x time, {rss['double'] / rss['stockload']:.2f}x peak RSS")
print(f"follow-up (scoped) / whole-table  {med['follow-up'] / med['follow-up-all']:.3f}x on {rows} rows")
summary = json.load(open(f"{work}/stockload.json"))
scripts = summary["scripts"]
# A load into an empty table stages on a second session while its transaction writes each chunk:
# the staging step's time is that whole phase; these scripts run inside it, side by side.
phase = "staging (read, parse, COPY)"
in_phase = {"stage_rejects.sql": "staging session", "stage_scope.sql": "staging session",
            "insert_empty.sql": "load's transaction, per chunk"}
serial = [x for x in scripts if x["name"] != phase and x["name"] not in in_phase]
staged = sum(x["millis"] for x in scripts if x["name"] == phase) / 1000
rest = summary["duration_secs"] - staged - sum(x["millis"] for x in serial) / 1000
print(f"\nwhere stockload's time went (last round, {summary['rows_loaded']} rows, {summary['duration_secs']:.2f} s):")
print(f"  {phase + ', the whole phase':52}{staged:>7.2f} s")
for x in scripts:
    if x["name"] in in_phase:
        label = f"{x['name']} ({in_phase[x['name']]})"
        print(f"    {label:50}{x['millis'] / 1000:>7.2f} s")
print("  before and after it, in the load's transaction:")
for x in serial:
    print(f"    {x['name']:50}{x['millis'] / 1000:>7.2f} s")
print(f"    {'rest: set-up, commit':50}{rest:>7.2f} s")
PY
echo "work folder: $WORK (remove it when done)"
