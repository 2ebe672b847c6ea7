#!/usr/bin/env bash
# Build the stockload-lambda binary for the Lambda runtime provided.al2023
# and zip it as target/lambda/stockload-lambda.zip (a single "bootstrap").
#
# Usage:
#   scripts/package-lambda.sh [--upload s3://bucket/key.zip | s3://bucket/prefix/]
#                             [--no-zig] [--no-install]
#
# How it builds:
#   * cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.26
#     links against glibc 2.26, so the binary runs on Amazon Linux 2 and
#     2023 (provided.al2023 has glibc 2.34). cargo-zigbuild and zig come from
#     PATH, or are pip-installed (PyPI: cargo-zigbuild, ziglang) into
#     .venv-build/ when missing (skip that with --no-install).
#   * Fallback (no zig, or --no-zig): plain `cargo build --release`. That links
#     against the build machine's glibc, which may be too new for Lambda;
#     the GLIBC check below then fails rather than shipping a broken zip.
#
# The script never calls AWS. With --upload it prints the `aws s3 cp`
# command (and the deploy parameters) for you to run.
set -euo pipefail

BIN=stockload-lambda
MAX_GLIBC=2.34 # glibc of the provided.al2023 runtime

# Sets ROOT, VENV, RUST_TARGET, ZIG_TARGET; defines usage, parse_common_arg,
# log/warn/die, require_build_tools, build_binary and check_glibc.
# shellcheck source=SCRIPTDIR/lib/zigbuild.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/zigbuild.sh"

OUT_DIR=$ROOT/target/lambda
ZIP=$OUT_DIR/stockload-lambda.zip

upload=""
while [ $# -gt 0 ]; do
    case $1 in
        --upload)
            [ $# -ge 2 ] || { echo "error: --upload needs s3://bucket/key" >&2; exit 2; }
            upload=$2
            shift 2
            ;;
        --upload=*) upload=${1#--upload=}; shift ;;
        *) parse_common_arg "$1"; shift ;;
    esac
done
if [ -n "$upload" ]; then
    case $upload in
        s3://?*/*) ;;
        *) echo "error: --upload expects s3://bucket/key.zip or s3://bucket/prefix/, got: $upload" >&2; exit 2 ;;
    esac
fi

require_build_tools

cd "$ROOT"
# Never leave a zip from an earlier build behind if this one fails.
rm -f "$ZIP" "$OUT_DIR/bootstrap"
build_binary "$BIN" "$MAX_GLIBC" "Lambda provided.al2023"

mkdir -p "$OUT_DIR"
install -m 0755 "$BUILT" "$OUT_DIR/bootstrap"

# --- GLIBC check --------------------------------------------------------------
check_glibc "$OUT_DIR/bootstrap" "$MAX_GLIBC" "provided.al2023"

# --- zip ----------------------------------------------------------------------
if command -v zip >/dev/null; then
    (cd "$OUT_DIR" && zip -q -X "$ZIP" bootstrap)
else
    # zipfile -c stores the file under its basename and keeps the 0755 mode.
    python3 -m zipfile -c "$ZIP" "$OUT_DIR/bootstrap"
fi
sha=$(sha256sum "$ZIP" | cut -c1-12)
log "wrote ${ZIP#"$ROOT"/} ($(wc -c <"$ZIP") bytes, sha256 $sha...)"

if [ -n "$upload" ]; then
    dest=$upload
    case $dest in */) dest=${dest}stockload-lambda-$sha.zip ;; esac
    rest=${dest#s3://}
    bucket=${rest%%/*}
    key=${rest#*/}
    cat <<EOF

Upload it (this script does not call AWS):

  aws s3 cp '$ZIP' '$dest'

then deploy/update the stack with
  LambdaCodeBucket=$bucket LambdaCodeKey=$key
(use a new key for every build: CloudFormation only updates the function
code when LambdaCodeBucket/LambdaCodeKey change).
EOF
fi
