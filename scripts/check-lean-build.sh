#!/usr/bin/env bash
# The lean build (no `aws`, no `dev-tools` feature: no AWS SDK, no throwaway-cluster code) must
# load a local batch into PostgreSQL and refuse S3 with a clear message. Uses the default build's
# `dev-postgres` and `sample` for the database and the batch (the lean binary has neither).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked --quiet --bin stockload
cargo build --locked --quiet --no-default-features --bin stockload --target-dir target/lean
full=target/debug/stockload
lean=target/lean/debug/stockload

work=$(mktemp -d)
cleanup() { exec 3>&- 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# dev-postgres prints the URL and keeps the cluster until its stdin closes (fd 3 here).
mkfifo "$work/hold"
"$full" dev-postgres < "$work/hold" > "$work/url" &
exec 3> "$work/hold"
for _ in $(seq 1 600); do [ -s "$work/url" ] && break; sleep 0.1; done
url=$(head -n1 "$work/url")
[ -n "$url" ] || { echo "lean build check: no throwaway PostgreSQL" >&2; exit 1; }

"$full" sample --out "$work/batch" --files 5 --rows 20 > /dev/null
DATABASE_URL="$url" "$lean" load --source "$work/batch/Stocks" \
  --companies "$work/batch/CompanyNames/top_companies.txt" --json > "$work/summary.json"
grep -q '"status": "succeeded"' "$work/summary.json" \
  || { echo "lean build check: the local load did not succeed" >&2; cat "$work/summary.json" >&2; exit 1; }

if DATABASE_URL="$url" "$lean" load --source s3://bucket/Stocks/ --companies s3://bucket/top.txt \
     > "$work/s3.out" 2>&1; then
  echo "lean build check: an S3 load succeeded without the aws feature" >&2; exit 1
fi
grep -q "built without the \`aws\` feature" "$work/s3.out" \
  || { echo "lean build check: unclear S3 refusal:" >&2; cat "$work/s3.out" >&2; exit 1; }
if "$lean" demo > /dev/null 2>&1; then
  echo "lean build check: demo exists without dev-tools" >&2; exit 1
fi
echo "lean build check: local load ok, S3 refused clearly, no dev tools ($(du -h "$lean" | cut -f1) binary)"
