#!/usr/bin/env bash
# What the data-quality checks cost, paired and alternating on one throwaway cluster:
#
#   scripts/bench-quality.sh [LISTED]   (default 1000 listed files of 2520 rows, faults included)
#
#   checks      `stockload load` of the batch into an empty database, as shipped
#   no-checks   the same load with --sql-dir set to a copy of sql/ as before the checks
#               (scripts/lib/bench.sh): quality_checks.sql does nothing, and stage_scope.sql notes
#               first days only, without the counts per day and company the checks read (same
#               binary, same everything else)
#   day         a daily append (1 new day x LISTED companies) into the loaded table, with checks
#   day-none    the same day without checks (the day's rows deleted before each run)
#
# Each round runs checks and no-checks in alternation (which goes first alternates too), each
# command after a CHECKPOINT; prints the medians, the ratio per round and of the medians, and the
# time of quality_checks.sql itself from the load's own script timers.
# BENCH_REPS (default 5), BENCH_ROWS (2520), BENCH_DIR (work folder).
set -euo pipefail
cd "$(dirname "$0")/.."

LISTED=${1:-1000}
ROWS=${BENCH_ROWS:-2520}
REPS=${BENCH_REPS:-5}
source scripts/lib/bench.sh
# (Not bench_setup: this bench needs only the dev tools, so its release build skips the AWS SDK.)
WORK=${BENCH_DIR:-$(mktemp -d /tmp/stockload-bench-quality.XXXXXX)}
mkdir -p "$WORK" && chmod 755 "$WORK"
command -v psql >/dev/null || { echo "bench needs psql (postgresql-client)" >&2; exit 1; }
export PGOPTIONS="-c client_min_messages=warning"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
cargo build --release --quiet --no-default-features --features dev-tools --bin stockload
BIN=$CARGO_TARGET_DIR/release/stockload

if [ ! -f "$WORK/batch/CompanyNames/top_companies.txt" ]; then
  echo "generating $LISTED files x $ROWS rows in $WORK ..."
  "$BIN" sample --out "$WORK/batch" --files "$LISTED" --rows "$ROWS" --faulty >/dev/null
fi
STOCKS=$WORK/batch/Stocks
INDEX=$WORK/batch/CompanyNames/top_companies.txt
# The scripts without the checks; every other script as shipped.
bench_sql_without_checks "$WORK/sql-none"

# One new trading day per company, after the last day of its file.
python3 - "$WORK" <<'PY'
import datetime, os, re, sys
work = sys.argv[1]
stocks = os.path.join(work, "batch", "Stocks")
index = open(os.path.join(work, "batch", "CompanyNames", "top_companies.txt")).read()
names = [n.strip().strip("'") for n in re.split(r"[,\n]", index) if n.strip()]
os.makedirs(os.path.join(work, "day", "Stocks"), exist_ok=True)
done = []
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
    done.append(name)
with open(os.path.join(work, "day", "index.txt"), "w") as f:
    f.write(", ".join(f"'{n}'" for n in done) + "\n")
with open(os.path.join(work, "day", "date"), "w") as f:
    f.write(f"{d}\n")
PY

bench_cluster
rm -f "$WORK/results"

run() { # label db stocks index [extra args]: appends "label seconds quality_ms"
  local label=$1 db=$2 stocks=$3 index=$4; shift 4
  psql -qX "$URL" -c CHECKPOINT >/dev/null
  local start end
  start=$(date +%s.%N)
  DATABASE_URL=$base/$db "$BIN" load --source "$stocks" --companies "$index" --json "$@" \
    >"$WORK/$label.json" 2>"$WORK/$label.err" ||
    { echo "$label failed:" >&2; tail -5 "$WORK/$label.err" >&2; exit 1; }
  end=$(date +%s.%N)
  python3 - "$WORK/$label.json" "${label%%.*}" "$start" "$end" >>"$WORK/results" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
ms = sum(s["millis"] for s in summary["scripts"] if s["name"].endswith("quality_checks.sql"))
print(sys.argv[2], float(sys.argv[4]) - float(sys.argv[3]), ms)
PY
}
newdb() {
  psql -qX "$URL" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null
  DATABASE_URL=$base/$1 "$BIN" migrate >/dev/null
}

for rep in $(seq "$REPS"); do
  echo "round $rep of $REPS ..."
  newdb "q_$rep"; newdb "n_$rep"
  if [ $((rep % 2)) = 1 ]; then
    run "checks.$rep" "q_$rep" "$STOCKS" "$INDEX"
    run "no-checks.$rep" "n_$rep" "$STOCKS" "$INDEX" --sql-dir "$WORK/sql-none"
  else
    run "no-checks.$rep" "n_$rep" "$STOCKS" "$INDEX" --sql-dir "$WORK/sql-none"
    run "checks.$rep" "q_$rep" "$STOCKS" "$INDEX"
  fi
  [ "$rep" = "$REPS" ] || psql -qX "$URL" -c "DROP DATABASE q_$rep" -c "DROP DATABASE n_$rep" >/dev/null
done
DAY=$(cat "$WORK/day/date")
for rep in $(seq "$REPS"); do
  for mode in day day-none; do
    psql -qX "$base/q_$REPS" -c "DELETE FROM historical_stocks_data WHERE stock_date = '$DAY'" >/dev/null
    if [ "$mode" = day ]; then
      run "day.$rep" "q_$REPS" "$WORK/day/Stocks" "$WORK/day/index.txt"
    else
      run "day-none.$rep" "q_$REPS" "$WORK/day/Stocks" "$WORK/day/index.txt" --sql-dir "$WORK/sql-none"
    fi
  done
done
rows=$(psql -qXtA "$base/q_$REPS" -c "SELECT count(*) FROM historical_stocks_data")
flags=$(psql -qXtA "$base/q_$REPS" -c "SELECT string_agg(check_name || ' ' || n, ', ') FROM (SELECT check_name, count(*) AS n FROM quality_flags GROUP BY 1 ORDER BY 1) AS c")

python3 - "$WORK/results" "$rows" "$flags" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, secs, ms = line.split()
    runs[label].append((float(secs), int(ms)))
med = {k: statistics.median(s for s, _ in v) for k, v in runs.items()}
print(f"\n{'':12}{'median s':>10}{'runs':>6}{'quality_checks.sql median s':>30}")
for k in ["checks", "no-checks", "day", "day-none"]:
    q = statistics.median(ms for _, ms in runs[k]) / 1000
    print(f"{k:12}{med[k]:>10.2f}{len(runs[k]):>6}{q:>30.3f}")
pairs = [c / n for (c, _), (n, _) in zip(runs["checks"], runs["no-checks"])]
print(f"\nfirst load with / without checks: {med['checks'] / med['no-checks']:.2f}x (medians; goal <= 1.15x);"
      f" per round: {', '.join(f'{p:.2f}' for p in pairs)}")
print(f"daily append with checks: {med['day']:.2f} s (without: {med['day-none']:.2f} s)")
print(f"{sys.argv[2]} rows; flags: {sys.argv[3]}")
PY
