# Shared by scripts/bench.sh and scripts/bench-scale.sh (sourced from the repository root).
#   bench_setup PREFIX   the work folder ($WORK: BENCH_DIR or a new /tmp/PREFIX.XXXXXX), the tools
#                        checked, the release build ($BIN)
#   bench_cluster        a throwaway cluster ($URL, $base) removed when the script exits
#   bench_sql_without_checks DIR
#                        a copy of sql/ in DIR as the load ran before the data-quality checks:
#                        quality_checks.sql does nothing, stage_scope.sql notes first days only

bench_setup() {
  WORK=${BENCH_DIR:-$(mktemp -d "/tmp/$1.XXXXXX")}
  mkdir -p "$WORK"
  chmod 755 "$WORK"
  TIME=/usr/bin/time
  [ -x "$TIME" ] || { echo "bench needs GNU time: apt-get install time" >&2; exit 1; }
  command -v psql >/dev/null || { echo "bench needs psql (postgresql-client)" >&2; exit 1; }
  export PGOPTIONS="-c client_min_messages=warning"
  export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
  cargo build --release --quiet --bin stockload
  BIN=$CARGO_TARGET_DIR/release/stockload
}

bench_cluster() {
  coproc PG { "$BIN" dev-postgres; }
  read -r URL <&"${PG[0]}"
  pg_in=${PG[1]}
  trap 'exec {pg_in}>&-; wait "$PG_PID" 2>/dev/null || true' EXIT
  base=${URL%/postgres}
}

bench_sql_without_checks() {
  rm -rf "$1" && cp -r sql "$1"
  printf -- '-- quality_checks.sql replaced for the bench: Reads nothing, writes nothing.\nSELECT 1;\n' \
    >"$1/quality_checks.sql"
  cat >"$1/stage_scope.sql" <<'SQL'
-- stage_scope.sql as before the quality checks (for the bench): each company's first loaded day.
INSERT INTO stockload_work.run_scope (run_id, company_name, first_date)
SELECT current_setting('stockload.run_id')::bigint, s.company_name, min(s.stock_date)
FROM stockload_stage AS s
WHERE s.reject_kind IS NULL
GROUP BY s.company_name;
SQL
}
