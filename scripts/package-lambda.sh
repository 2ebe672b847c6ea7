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
RUST_TARGET=x86_64-unknown-linux-gnu
ZIG_TARGET=${RUST_TARGET}.2.26
MAX_GLIBC=2.34 # glibc of the provided.al2023 runtime

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=$ROOT/target/lambda
ZIP=$OUT_DIR/stockload-lambda.zip
VENV=$ROOT/.venv-build

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

upload=""
use_zig=1
may_install=1
while [ $# -gt 0 ]; do
    case $1 in
        --upload)
            [ $# -ge 2 ] || { echo "error: --upload needs s3://bucket/key" >&2; exit 2; }
            upload=$2
            shift 2
            ;;
        --upload=*) upload=${1#--upload=}; shift ;;
        --no-zig) use_zig=0; shift ;;
        --no-install) may_install=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done
if [ -n "$upload" ]; then
    case $upload in
        s3://?*/*) ;;
        *) echo "error: --upload expects s3://bucket/key.zip or s3://bucket/prefix/, got: $upload" >&2; exit 2 ;;
    esac
fi

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found"
command -v objdump >/dev/null || die "objdump not found (install binutils); it is needed for the GLIBC check"

# Make cargo-zigbuild + zig available; return non-zero if that is impossible.
ensure_zigbuild() {
    if [ -x "$VENV/bin/cargo-zigbuild" ]; then
        PATH=$VENV/bin:$PATH
    fi
    if ! command -v cargo-zigbuild >/dev/null || ! zig_available; then
        [ "$may_install" -eq 1 ] || return 1
        command -v python3 >/dev/null || return 1
        log "installing cargo-zigbuild and ziglang into ${VENV#"$ROOT"/}/"
        [ -d "$VENV" ] || python3 -m venv "$VENV" || return 1
        "$VENV/bin/python" -m pip install --quiet --upgrade cargo-zigbuild ziglang || return 1
        PATH=$VENV/bin:$PATH
    fi
    export PATH
    # Prefer the zig that ships in the ziglang wheel when zig is not on PATH.
    if ! command -v zig >/dev/null && [ -z "${CARGO_ZIGBUILD_ZIG_PATH:-}" ]; then
        local zig
        zig=$(python_with_ziglang -c 'import pathlib, ziglang; print(pathlib.Path(ziglang.__file__).with_name("zig"))') || return 1
        [ -x "$zig" ] || return 1
        export CARGO_ZIGBUILD_ZIG_PATH=$zig
    fi
    command -v cargo-zigbuild >/dev/null && zig_available
}

python_with_ziglang() {
    local py
    for py in "$VENV/bin/python" python3; do
        if command -v "$py" >/dev/null && "$py" -c 'import ziglang' 2>/dev/null; then
            "$py" "$@"
            return
        fi
    done
    return 1
}

zig_available() {
    [ -n "${CARGO_ZIGBUILD_ZIG_PATH:-}" ] && [ -x "$CARGO_ZIGBUILD_ZIG_PATH" ] && return 0
    command -v zig >/dev/null && return 0
    python_with_ziglang -c 'pass' 2>/dev/null
}

cd "$ROOT"
used_zig=0
# Never leave a zip from an earlier build behind if this one fails.
rm -f "$ZIP" "$OUT_DIR/bootstrap"
built=""
if [ "$use_zig" -eq 1 ] && ensure_zigbuild; then
    if command -v rustup >/dev/null; then
        rustup target list --installed 2>/dev/null | grep -qx "$RUST_TARGET" ||
            rustup target add "$RUST_TARGET"
    fi
    used_zig=1
    log "cargo zigbuild --release --target $ZIG_TARGET --bin $BIN"
    cargo zigbuild --release --target "$ZIG_TARGET" --bin "$BIN"
    built=$ROOT/target/$RUST_TARGET/release/$BIN
else
    [ "$use_zig" -eq 0 ] || warn "cargo-zigbuild/zig unavailable (see --no-install); falling back to plain cargo build"
    warn "plain cargo build links against this machine's glibc ($(ldd --version 2>/dev/null | head -n1 | grep -o '[0-9.]*$' || echo unknown)); Lambda provided.al2023 has glibc $MAX_GLIBC"
    log "cargo build --release --bin $BIN"
    cargo build --release --bin "$BIN"
    built=$ROOT/target/release/$BIN
fi
[ -f "$built" ] || die "build produced no binary at $built"

mkdir -p "$OUT_DIR"
install -m 0755 "$built" "$OUT_DIR/bootstrap"

# --- GLIBC check --------------------------------------------------------------
newest=$(objdump -T "$OUT_DIR/bootstrap" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n1 || true)
if [ -z "$newest" ]; then
    log "bootstrap references no GLIBC_ symbol versions (static?)"
else
    highest=$(printf '%s\n%s\n' "$newest" "$MAX_GLIBC" | sort -V | tail -n1)
    if [ "$highest" != "$MAX_GLIBC" ]; then
        if [ "$used_zig" -eq 1 ]; then
            hint="unexpected for a zig build against $ZIG_TARGET; check for a dependency that links a newer system library"
        else
            hint="build with cargo-zigbuild (drop --no-zig, or install cargo-zigbuild + ziglang)"
        fi
        rm -f "$OUT_DIR/bootstrap"
        die "bootstrap needs GLIBC_$newest, newer than GLIBC_$MAX_GLIBC of provided.al2023; $hint"
    fi
    log "GLIBC check ok: newest symbol version GLIBC_$newest <= GLIBC_$MAX_GLIBC"
fi

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
