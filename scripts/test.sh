#!/usr/bin/env bash
# The project's test command (README, CI): installs the tools the tests start into .venv (moto_server
# for S3/SNS/SQS/Data Pipeline, aiosmtpd for email, awscli's Data Pipeline translator, cfn-lint)
# and Debian's chromium (the run report's browser checks),
# then runs every Rust test (each starts its own throwaway PostgreSQL), cfn-lint and the template
# wiring checks. Re-running reuses .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if ! "$venv/bin/python" -c 'import moto, aiosmtpd, awscli, cfnlint' 2>/dev/null; then
  echo "== installing test tools into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
fi
export PATH="$PWD/$venv/bin:$PATH"

echo "== citus (built once from ../shared/citus when missing; its tests skip themselves without it)"
citus=0
bash scripts/citus-build.sh || citus=$?
if [ "$citus" = 3 ]; then
  echo "citus: not available here: the Citus tests will report SKIPPED"
elif [ "$citus" != 0 ]; then
  echo "citus: the build failed" >&2
  exit "$citus"
fi

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
cargo test --locked

echo "== lean build (no aws, no dev-tools): a local load works, S3 is refused clearly"
bash scripts/check-lean-build.sh

echo "== cfn-lint deploy/stockload.yaml"
cfn-lint deploy/stockload.yaml
echo "cfn-lint: no errors or warnings"

echo "== template wiring checks"
python deploy/check_template.py deploy/stockload.yaml
bash deploy/test_check_template.sh
