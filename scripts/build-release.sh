#!/usr/bin/env bash
# Build the `stockload` loader binary for the Data Pipeline EC2 resource
# (Amazon Linux 2, glibc 2.26) into target/release-al2/stockload.
#
# Usage: scripts/build-release.sh [--no-zig] [--no-install]
#
#   * cargo zigbuild --release --target x86_64-unknown-linux-gnu.2.26
#     (cargo-zigbuild and zig from PATH, or pip-installed from PyPI
#     - cargo-zigbuild, ziglang - into .venv-build/ unless --no-install).
#   * Fallback (no zig, or --no-zig): plain `cargo build --release`, which
#     links against this machine's glibc and will usually be too new for
#     Amazon Linux 2; the GLIBC check below then fails instead of producing
#     a binary that dies on the instance with "GLIBC_2.xx not found".
# Fails unless every GLIBC_ symbol version is <= 2.26 (also fine on AL2023).
set -euo pipefail

BIN=stockload
MAX_GLIBC=2.26 # Amazon Linux 2

# Sets ROOT, VENV, RUST_TARGET, ZIG_TARGET; defines usage, parse_common_arg,
# log/warn/die, require_build_tools, build_binary and check_glibc.
# shellcheck source=SCRIPTDIR/lib/zigbuild.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/zigbuild.sh"

OUT_DIR=$ROOT/target/release-al2

while [ $# -gt 0 ]; do
    parse_common_arg "$1"
    shift
done

require_build_tools

cd "$ROOT"
build_binary "$BIN" "$MAX_GLIBC" "Amazon Linux 2"

mkdir -p "$OUT_DIR"
install -m 0755 "$BUILT" "$OUT_DIR/$BIN"

check_glibc "$OUT_DIR/$BIN" "$MAX_GLIBC" "Amazon Linux 2"
log "wrote ${OUT_DIR#"$ROOT"/}/$BIN ($(wc -c <"$OUT_DIR/$BIN") bytes)"
echo "Upload it to the key your pipeline_definition.json downloads it from, e.g.:"
echo "  aws s3 cp '$OUT_DIR/$BIN' s3://<SourceBucketName>/<key>"
