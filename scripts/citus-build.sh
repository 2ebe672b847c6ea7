#!/usr/bin/env bash
# Builds and installs the Citus extension into this machine's PostgreSQL when it is missing and its
# source is at hand (no Debian package exists for PostgreSQL 15 here). Idempotent: once citus.so is
# installed it returns at once. Exit 0 = Citus is installed; exit 3 = not available (no source or no
# way to install the build dependencies) — callers then skip the Citus tests and say so.
#
# Source: $CITUS_SOURCE, else ../shared/citus/citus-13.2.2.tar.gz next to the repository.
set -euo pipefail
cd "$(dirname "$0")/.."

pkglibdir=$(pg_config --pkglibdir 2>/dev/null || true)
if [ -n "$pkglibdir" ] && [ -f "$pkglibdir/citus.so" ]; then
  echo "citus: installed ($pkglibdir/citus.so)"
  exit 0
fi
source_tar=${CITUS_SOURCE:-$(cd .. && pwd)/shared/citus/citus-13.2.2.tar.gz}
if [ ! -f "$source_tar" ]; then
  echo "citus: not installed and no source at $source_tar: Citus tests will be skipped"
  exit 3
fi
if [ "$(id -u)" != 0 ]; then
  echo "citus: building needs root (apt-get and make install into $pkglibdir): Citus tests will be skipped"
  exit 3
fi

echo "== citus: installing build dependencies"
export DEBIAN_FRONTEND=noninteractive
pgver=$(pg_config --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
deps="libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev libselinux1-dev libxslt1-dev libpam0g-dev libreadline-dev"
# The server headers of exactly the installed server, so installing them never upgrades (and so
# never disturbs) the PostgreSQL this machine runs; the newest ones only when that version is gone.
server=$(dpkg-query -W -f '${Version}' "postgresql-$pgver" 2>/dev/null || true)
install() { apt-get install -y -q "$@" >/dev/null 2>&1; }
# shellcheck disable=SC2086 # deps is a list of package names
install "postgresql-server-dev-$pgver=$server" $deps \
  || { apt-get update -q >/dev/null && install "postgresql-server-dev-$pgver=$server" $deps; } \
  || install "postgresql-server-dev-$pgver" $deps \
  || { echo "citus: cannot install the build dependencies: Citus tests will be skipped"; exit 3; }

build=${CITUS_BUILD_DIR:-$HOME/.cache/stockload/citus-build}
mkdir -p "$build"
if [ ! -f "$build/src/Makefile.global" ]; then
  echo "== citus: configuring in $build"
  rm -rf "$build" && mkdir -p "$build"
  tar xzf "$source_tar" -C "$build" --strip-components=1
  # Known snag (../shared/citus/README.md): PostgreSQL 15.20+ exports have_createdb_privilege(),
  # which Citus 13.2.2 also defines for PostgreSQL 15. Drop Citus's copy when the server has one.
  if grep -q "have_createdb_privilege" "$(pg_config --includedir-server)/commands/dbcommands.h"; then
    python3 - "$build/src/include/pg_version_compat.h" <<'PY'
import re, sys
path = sys.argv[1]
text = open(path).read()
patched = re.sub(r"static inline bool\s+have_createdb_privilege\(void\)\s*\{.*?\n\}\n", "", text, flags=re.S)
open(path, "w").write(patched)
PY
  fi
  (cd "$build" && ./configure --quiet >/dev/null)
fi
echo "== citus: building (a few minutes on two cores)"
make -C "$build" -j"$(nproc)" -s >/dev/null
make -C "$build" install -s >/dev/null
echo "citus: installed ($pkglibdir/citus.so)"
