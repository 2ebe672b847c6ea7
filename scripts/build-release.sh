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
RUST_TARGET=x86_64-unknown-linux-gnu
ZIG_TARGET=${RUST_TARGET}.2.26
MAX_GLIBC=2.26 # Amazon Linux 2

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT_DIR=$ROOT/target/release-al2
VENV=$ROOT/.venv-build

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

use_zig=1
may_install=1
while [ $# -gt 0 ]; do
    case $1 in
        --no-zig) use_zig=0; shift ;;
        --no-install) may_install=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || die "cargo not found"
command -v objdump >/dev/null || die "objdump not found (install binutils); it is needed for the GLIBC check"

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
    if ! command -v zig >/dev/null && [ -z "${CARGO_ZIGBUILD_ZIG_PATH:-}" ]; then
        local zig
        zig=$(python_with_ziglang -c 'import pathlib, ziglang; print(pathlib.Path(ziglang.__file__).with_name("zig"))') || return 1
        [ -x "$zig" ] || return 1
        export CARGO_ZIGBUILD_ZIG_PATH=$zig
    fi
    command -v cargo-zigbuild >/dev/null && zig_available
}

cd "$ROOT"
used_zig=0
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
    warn "plain cargo build links against this machine's glibc ($(ldd --version 2>/dev/null | head -n1 | grep -o '[0-9.]*$' || echo unknown)); Amazon Linux 2 has glibc $MAX_GLIBC"
    log "cargo build --release --bin $BIN"
    cargo build --release --bin "$BIN"
    built=$ROOT/target/release/$BIN
fi
[ -f "$built" ] || die "build produced no binary at $built"

mkdir -p "$OUT_DIR"
install -m 0755 "$built" "$OUT_DIR/$BIN"

newest=$(objdump -T "$OUT_DIR/$BIN" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n1 || true)
if [ -z "$newest" ]; then
    log "$BIN references no GLIBC_ symbol versions (static?)"
else
    highest=$(printf '%s\n%s\n' "$newest" "$MAX_GLIBC" | sort -V | tail -n1)
    if [ "$highest" != "$MAX_GLIBC" ]; then
        if [ "$used_zig" -eq 1 ]; then
            hint="unexpected for a zig build against $ZIG_TARGET; check for a dependency that links a newer system library"
        else
            hint="build with cargo-zigbuild (drop --no-zig, or install cargo-zigbuild + ziglang)"
        fi
        rm -f "$OUT_DIR/$BIN"
        die "$BIN needs GLIBC_$newest, newer than GLIBC_$MAX_GLIBC of Amazon Linux 2; $hint"
    fi
    log "GLIBC check ok: newest symbol version GLIBC_$newest <= GLIBC_$MAX_GLIBC"
fi
log "wrote ${OUT_DIR#"$ROOT"/}/$BIN ($(wc -c <"$OUT_DIR/$BIN") bytes)"
echo "Upload it to the key your pipeline_definition.json downloads it from, e.g.:"
echo "  aws s3 cp '$OUT_DIR/$BIN' s3://<SourceBucketName>/<key>"
