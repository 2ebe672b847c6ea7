# shellcheck shell=bash
# Shared by scripts/build-release.sh and scripts/package-lambda.sh; source it,
# do not run it. It builds one release binary against glibc 2.26 with
# cargo-zigbuild (cargo-zigbuild and zig from PATH, or pip-installed from PyPI
# - cargo-zigbuild, ziglang - into .venv-build/), falls back to a plain
# `cargo build --release`, and checks the GLIBC_ symbol versions the result
# needs. The sourcing script is expected to run under `set -euo pipefail`.
#
# Sets:      ROOT (repository root), VENV, RUST_TARGET, ZIG_TARGET,
#            use_zig=1, may_install=1 (changed by parse_common_arg).
# Functions:
#   usage                     print the sourcing script's header comment
#   parse_common_arg ARG      handle --no-zig, --no-install, -h/--help;
#                             anything else: error + usage, exit 2
#   log MSG / warn MSG / die MSG
#   require_build_tools       die unless cargo and objdump are on PATH
#   ensure_zigbuild           make cargo-zigbuild + zig available, or return 1
#   build_binary BIN MAX_GLIBC PLATFORM
#                             build BIN (run from $ROOT); sets BUILT (path of
#                             the binary) and USED_ZIG (1 = cargo zigbuild,
#                             0 = plain cargo build). PLATFORM names the
#                             target system in the fallback warning.
#   check_glibc FILE MAX_GLIBC LABEL
#                             die (removing FILE) unless every GLIBC_ symbol
#                             version FILE references is <= MAX_GLIBC; LABEL
#                             names the target system in the error.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VENV=$ROOT/.venv-build
RUST_TARGET=x86_64-unknown-linux-gnu
ZIG_TARGET=${RUST_TARGET}.2.26

# The script that sourced this file; its header comment is the usage text.
ZB_SCRIPT=${BASH_SOURCE[1]:-$0}

use_zig=1
may_install=1

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$ZB_SCRIPT"; }

parse_common_arg() {
    case $1 in
        --no-zig) use_zig=0 ;;
        --no-install) may_install=0 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "error: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
}

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

require_build_tools() {
    command -v cargo >/dev/null || die "cargo not found"
    command -v objdump >/dev/null || die "objdump not found (install binutils); it is needed for the GLIBC check"
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

# What release binaries for AWS are built with: the AWS parts, not the development tools
# (throwaway clusters, sample generator, demo), which have no business on EC2 or in a Lambda.
RELEASE_FEATURES=${RELEASE_FEATURES:---no-default-features --features aws}

# build_binary BIN MAX_GLIBC PLATFORM -> BUILT, USED_ZIG
build_binary() {
    local bin=$1 max_glibc=$2 platform=$3
    USED_ZIG=0
    BUILT=""
    if [ "$use_zig" -eq 1 ] && ensure_zigbuild; then
        if command -v rustup >/dev/null; then
            rustup target list --installed 2>/dev/null | grep -qx "$RUST_TARGET" ||
                rustup target add "$RUST_TARGET"
        fi
        USED_ZIG=1
        log "cargo zigbuild --release --target $ZIG_TARGET --bin $bin $RELEASE_FEATURES"
        # shellcheck disable=SC2086 # RELEASE_FEATURES is a list of flags
        cargo zigbuild --release --target "$ZIG_TARGET" --bin "$bin" $RELEASE_FEATURES
        BUILT=$ROOT/target/$RUST_TARGET/release/$bin
    else
        [ "$use_zig" -eq 0 ] || warn "cargo-zigbuild/zig unavailable (see --no-install); falling back to plain cargo build"
        # sed reads all of ldd's output (head would close the pipe early and fail under pipefail).
        local here
        here=$( (ldd --version 2>/dev/null || true) | sed -n '1s/.* \([0-9][0-9.]*\)$/\1/p')
        warn "plain cargo build links against this machine's glibc (${here:-unknown}); $platform has glibc $max_glibc"
        log "cargo build --release --bin $bin $RELEASE_FEATURES"
        # shellcheck disable=SC2086 # RELEASE_FEATURES is a list of flags
        cargo build --release --bin "$bin" $RELEASE_FEATURES
        BUILT=$ROOT/target/release/$bin
    fi
    [ -f "$BUILT" ] || die "build produced no binary at $BUILT"
}

# check_glibc FILE MAX_GLIBC LABEL (uses USED_ZIG from build_binary for the hint)
check_glibc() {
    local file=$1 max_glibc=$2 label=$3
    local name=${file##*/} newest highest hint
    newest=$(objdump -T "$file" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/^GLIBC_//' | sort -uV | tail -n1 || true)
    if [ -z "$newest" ]; then
        log "$name references no GLIBC_ symbol versions (static?)"
        return 0
    fi
    highest=$(printf '%s\n%s\n' "$newest" "$max_glibc" | sort -V | tail -n1)
    if [ "$highest" != "$max_glibc" ]; then
        if [ "${USED_ZIG:-0}" -eq 1 ]; then
            hint="unexpected for a zig build against $ZIG_TARGET; check for a dependency that links a newer system library"
        else
            hint="build with cargo-zigbuild (drop --no-zig, or install cargo-zigbuild + ziglang)"
        fi
        rm -f "$file"
        die "$name needs GLIBC_$newest, newer than GLIBC_$max_glibc of $label; $hint"
    fi
    log "GLIBC check ok: newest symbol version GLIBC_$newest <= GLIBC_$max_glibc"
}
