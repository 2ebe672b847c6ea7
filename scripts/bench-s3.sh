#!/usr/bin/env bash
# Part of scripts/bench.sh (BENCH_S3=1): loads the same batch from S3 (moto_server on loopback)
# into a fresh database and prints "seconds peak_rss_kb" on stdout.
#   scripts/bench-s3.sh BIN WORK_DIR BASE_DATABASE_URL
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1 WORK=$2 BASE=$3
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { echo "needs .venv (run scripts/test.sh once)" >&2; exit 1; }
port=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
.venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$WORK/moto.log" 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
# Wait until it accepts connections (at most 30 s).
"$PY" - "$port" <<'PY'
import socket, sys, time
deadline = time.time() + 30
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("moto_server did not start")
        time.sleep(0.1)
PY
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
"$PY" - "$WORK/batch" <<'PY' >&2
import sys, os, re, boto3, concurrent.futures as cf
root = sys.argv[1]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.create_bucket(Bucket="bench")
index = open(os.path.join(root, "CompanyNames", "top_companies.txt")).read()
names = [n.strip(" '\"\n") for n in index.split(",") if n.strip(" '\"\n")]
s3.put_object(Bucket="bench", Key="CompanyNames/top_companies.txt", Body=index.encode())
def put(name):
    with open(os.path.join(root, "Stocks", name), "rb") as f:
        s3.put_object(Bucket="bench", Key=f"Stocks/{name}", Body=f.read())
with cf.ThreadPoolExecutor(16) as pool:
    list(pool.map(put, names))
print(f"uploaded {len(names)} files to moto", file=sys.stderr)
PY
psql -qX "$BASE/postgres" -c "CREATE DATABASE load_s3" >/dev/null
DATABASE_URL=$BASE/load_s3 /usr/bin/time -v -o "$WORK/s3.time" "$BIN" load --json --concurrency 32 \
  --source s3://bench/Stocks/ --companies s3://bench/CompanyNames/top_companies.txt >"$WORK/s3.out" 2>"$WORK/s3.err"
secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$WORK/s3.time" | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/s3.time")
echo "$secs $rss"
