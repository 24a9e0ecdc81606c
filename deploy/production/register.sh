#!/usr/bin/env bash
# Create the process work pool (with its concurrency limit) and register every deployment of
# deploy/prefect.yaml. Idempotent: run it after each release. Needs PREFECT_API_URL.
#   deploy/production/register.sh [POOL_CONCURRENCY]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
: "${PREFECT_API_URL:?point it at the Prefect server, e.g. http://prefect.internal:4200/api}"
case "$PREFECT_API_URL" in  # a remote server demands its auth string (docs/security.md)
    http://127.*|http://localhost*) ;;
    *) : "${PREFECT_API_AUTH_STRING:?the Prefect server is remote: set PREFECT_API_AUTH_STRING (user:password)}" ;;
esac
export BAOXUE_HOME="${BAOXUE_HOME:-$ROOT}" PREFECT_SERVER_ANALYTICS_ENABLED=false
PREFECT="$ROOT/.venv/bin/prefect"
if ! "$PREFECT" work-pool inspect baoxue-process >/dev/null 2>&1; then
    "$PREFECT" work-pool create baoxue-process --type process
fi
"$PREFECT" work-pool set-concurrency-limit baoxue-process "${1:-8}"
"$PREFECT" --no-prompt deploy --all --prefect-file deploy/prefect.yaml
"$PREFECT" deployment ls
