#!/usr/bin/env bash
# Run the Prefect server (API + UI) against PostgreSQL. Needs PREFECT_API_DATABASE_CONNECTION_URL.
#   deploy/production/prefect-server.sh [PORT]
#
# The Prefect API starts flow runs with any parameters and reads every run's logs: it is a write
# path into Baoxue. It listens on PREFECT_SERVER_API_HOST (default 127.0.0.1). On any other
# address (workers on other hosts) it must demand Prefect's basic auth: set
# PREFECT_SERVER_API_AUTH_STRING (user:password) here and the same value as
# PREFECT_API_AUTH_STRING on the web and worker hosts. This script refuses to expose an
# unauthenticated API. (docs/security.md)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${PREFECT_API_DATABASE_CONNECTION_URL:?set it to postgresql+asyncpg://prefect:…@host:5432/prefect}"
HOST="${PREFECT_SERVER_API_HOST:-127.0.0.1}"
case "$HOST" in
    127.*|localhost|::1) ;;
    *)
        if [ -z "${PREFECT_SERVER_API_AUTH_STRING:-}" ]; then
            echo "refusing to serve the Prefect API on $HOST without PREFECT_SERVER_API_AUTH_STRING (docs/security.md)" >&2
            exit 2
        fi
        case "$PREFECT_SERVER_API_AUTH_STRING" in
            *:*) ;;
            *) echo "PREFECT_SERVER_API_AUTH_STRING must be user:password" >&2; exit 2 ;;
        esac
        ;;
esac
export PREFECT_SERVER_ANALYTICS_ENABLED=false
exec "$ROOT/.venv/bin/prefect" server start --host "$HOST" --port "${1:-4200}"
