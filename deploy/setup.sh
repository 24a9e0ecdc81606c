#!/usr/bin/env bash
# Prepare a Debian 12 machine and the project's virtualenv. Idempotent and quick on re-runs.
#
#   deploy/setup.sh [system|venv|all]      (default: all)
#
#   system  apt-get install the Debian packages Baoxue needs, only those not yet installed
#           (PostgreSQL for the test cluster, CJK fonts and Pango for WeasyPrint, poppler-utils,
#           graphviz, chromium for the browser tests).
#   venv    python3 -m venv .venv, then exactly the versions in requirements.lock (every transitive
#           package pinned with its hashes: pip --require-hashes --no-deps), then Baoxue itself
#           (pip install --no-deps -e .); skipped when .venv/.stamp holds the current sha256 of
#           requirements.lock and pyproject.toml. `make lock` regenerates the lock on purpose.
#
# Environment: VENV (default .venv), PYTHON (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

DEB_PACKAGES=(
    postgresql
    fonts-noto-cjk fonts-arphic-uming
    libharfbuzz-subset0 libpango-1.0-0 libpangoft2-1.0-0
    poppler-utils graphviz chromium
)

log() { printf '[setup] %s\n' "$*" >&2; }

deb_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        log "need root to run: $*"
        return 1
    fi
}

setup_system() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        log "not a Debian system: install these yourself: ${DEB_PACKAGES[*]}"
        return 0
    fi
    local wanted=("${DEB_PACKAGES[@]}") missing=() pkg
    # python3 -m venv needs Debian's python3-venv unless the interpreter brings ensurepip itself.
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        wanted+=(python3-venv)
    fi
    for pkg in "${wanted[@]}"; do
        deb_installed "$pkg" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null
}

setup_venv() {
    local stamp="$VENV/.stamp" want
    want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [ -x "$VENV/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
            || { log "$PYTHON is older than 3.11"; return 1; }
        log "creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    log "pip install --require-hashes -r requirements.lock, then -e . (log: $VENV/pip.log)"
    if ! { "$VENV/bin/python" -m pip install --disable-pip-version-check --require-hashes --no-deps \
               -r requirements.lock \
           && "$VENV/bin/python" -m pip install --disable-pip-version-check --no-deps --no-build-isolation \
               -e . ; } </dev/null >"$VENV/pip.log" 2>&1; then
        tail -n 40 "$VENV/pip.log" >&2
        log "pip install failed"
        return 1
    fi
    # Anything installed that the lock does not name (a leftover of an older venv) would be untested.
    if ! "$VENV/bin/python" -m pip check >>"$VENV/pip.log" 2>&1; then
        tail -n 20 "$VENV/pip.log" >&2
        log "pip check failed: the venv does not match requirements.lock (make distclean, then again)"
        return 1
    fi
    printf '%s\n' "$want" >"$stamp"
}

case "${1:-all}" in
    system) setup_system ;;
    venv) setup_venv ;;
    all) setup_system; setup_venv ;;
    *) echo "usage: $0 [system|venv|all]" >&2; exit 2 ;;
esac
