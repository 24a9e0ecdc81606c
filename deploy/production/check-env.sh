#!/usr/bin/env bash
# Refuse to start a production web or worker process with an unsafe configuration:
# - BAOXUE_PRODUCTION=1 and a BAOXUE_SECRET_KEY of at least 32 characters (not the default);
# - PREFECT_API_AUTH_STRING set whenever PREFECT_API_URL points away from this host.
# Used by worker.sh and the web service (systemd ExecStartPre). The web app and store enforce the
# secret themselves too (store.db.Settings refuses the default key when BAOXUE_PRODUCTION=1).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
fail() { echo "baoxue: $*  (docs/security.md)" >&2; exit 2; }
[ "${BAOXUE_PRODUCTION:-}" = 1 ] || [ "${BAOXUE_PRODUCTION:-}" = true ] || fail "set BAOXUE_PRODUCTION=1 on production hosts"
"$ROOT/.venv/bin/python" -c "from store.db import Settings; Settings()" 2>/dev/null \
    || fail "BAOXUE_SECRET_KEY must be a random value of at least 32 characters (openssl rand -hex 32), the same on every host"
case "${PREFECT_API_URL:-}" in
    ""|http://127.*|http://localhost*|http://\[::1\]*) ;;
    *) [ -n "${PREFECT_API_AUTH_STRING:-}" ] || fail "PREFECT_API_URL is remote: set PREFECT_API_AUTH_STRING (user:password of the Prefect server)" ;;
esac
