#!/usr/bin/env bash
# The project's test command (README, CI): installs the tools the tests start into .venv (moto_server
# for S3/SNS/SQS/Data Pipeline, aiosmtpd for email, awscli's Data Pipeline translator, cfn-lint,
# cargo-lambda's Lambda Runtime API emulator) and Debian's chromium (the run report's browser checks),
# then runs every Rust test (each starts its own throwaway PostgreSQL), cfn-lint and the template
# wiring checks, and ends with a summary: tests passed/failed/ignored, and every test that could
# not run here, counted, with why (the Citus tests, when Citus cannot be built). Re-running reuses
# .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if ! "$venv/bin/python" -c 'import moto, aiosmtpd, awscli, cfnlint' 2>/dev/null ||
  [ ! -x "$venv/bin/cargo-lambda" ]; then
  echo "== installing test tools into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi
export PATH="$PWD/$venv/bin:$PATH"

# Tests that cannot run here record why in this file (tests/support `skipped`); the summary counts them.
skip_log=$(mktemp)
citus_log=$(mktemp)
cargo_log=$(mktemp)
trap 'rm -f "$skip_log" "$citus_log" "$cargo_log"' EXIT
export STOCKLOAD_SKIP_LOG="$skip_log"

echo "== citus (built once from ../shared/citus when missing)"
citus=0
bash scripts/citus-build.sh | tee "$citus_log" || citus=$?
if [ "$citus" = 3 ]; then
  # Only here may the Citus tests skip; anywhere else, a Citus test without Citus fails.
  STOCKLOAD_SKIP_CITUS="citus-build.sh: $(tail -n 1 "$citus_log" | sed 's/^citus: //')"
  export STOCKLOAD_SKIP_CITUS
  echo "citus: not available here: the Citus tests will be skipped and counted in the summary"
elif [ "$citus" != 0 ]; then
  echo "citus: the build failed" >&2
  exit "$citus"
else
  unset STOCKLOAD_SKIP_CITUS
fi

# What ran, what failed, what was skipped and why: printed last, also when the Rust tests fail.
summary() {
  echo "== summary"
  awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i) ~ /^(passed|failed|ignored);$/) n[$(i)] += $(i - 1); runs++ }
       END { printf "Rust tests: %d passed, %d failed, %d ignored (%d test targets)\n", n["passed;"], n["failed;"], n["ignored;"], runs }' "$cargo_log"
  if [ -s "$skip_log" ]; then
    # group<TAB>test<TAB>why, one line per skipped test.
    awk -F '\t' '{ n[$1]++; why[$1] = $3 } END { for (g in n) printf "%s tests: %d skipped (%s)\n", g, n[g], why[g] }' "$skip_log"
  fi
  if [ "$citus" = 0 ] && ! grep -q '^Citus' "$skip_log"; then
    echo "Citus tests: run on a throwaway Citus cluster (none skipped)"
  fi
  if [ -n "${STOCKLOAD_SKIP_BROWSER:-}" ]; then
    echo "Browser checks of the run report: skipped ($STOCKLOAD_SKIP_BROWSER)"
  else
    echo "Browser checks of the run report: run in headless chromium"
  fi
}

echo "== chromium (headless, for the run report's browser checks; installed when missing)"
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } || true
  elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    sudo -n apt-get install -y -qq chromium >/dev/null 2>&1 || true
  fi
fi
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  unset STOCKLOAD_SKIP_BROWSER
else
  # The report tests fail without a browser unless told why it is missing; they then say SKIPPED.
  export STOCKLOAD_SKIP_BROWSER="chromium could not be installed here (apt-get install -y chromium failed or needs root)"
  echo "chromium: not available: the report's browser checks will report SKIPPED"
fi

echo "== cargo test"
rust=0
cargo test --locked 2>&1 | tee "$cargo_log" || rust=$?
if [ "$rust" != 0 ]; then
  summary
  exit "$rust"
fi

echo "== lean build (no aws, no dev-tools): a local load works, S3 is refused clearly"
bash scripts/check-lean-build.sh

echo "== cfn-lint deploy/stockload.yaml"
cfn-lint deploy/stockload.yaml
echo "cfn-lint: no errors or warnings"

echo "== template wiring checks"
python deploy/check_template.py deploy/stockload.yaml
bash deploy/test_check_template.sh

summary
echo "lean build, cfn-lint, template wiring checks: passed"
