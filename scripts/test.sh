#!/usr/bin/env bash
# The project's test command (README, CI): installs the tools the tests start into .venv (moto_server
# for S3/SNS/SQS/Data Pipeline, aiosmtpd for email, awscli's Data Pipeline translator, cfn-lint,
# cargo-lambda's Lambda Runtime API emulator),
# then runs every Rust test (each starts its own throwaway PostgreSQL), cfn-lint and the template
# wiring checks. Re-running reuses .venv.
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

echo "== citus (built once from ../shared/citus when missing; its tests skip themselves without it)"
citus=0
bash scripts/citus-build.sh || citus=$?
if [ "$citus" = 3 ]; then
  echo "citus: not available here: the Citus tests will report SKIPPED"
elif [ "$citus" != 0 ]; then
  echo "citus: the build failed" >&2
  exit "$citus"
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
