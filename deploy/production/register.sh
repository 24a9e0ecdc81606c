#!/usr/bin/env bash
# Create the process work pool baoxue-process (with its concurrency limit) and register every
# deployment of deploy/deployments.py in it, the flow code at this checkout (each run's pull step
# sets the working directory here, so every worker host needs the same checkout at the same path).
# Idempotent: run it after each release. Needs PREFECT_API_URL. A site's own schedules:
# BAOXUE_SCHEDULES_FILE=/etc/baoxue/schedules.toml (deploy/schedules.py; checked before anything is
# registered). deploy/prefect.yaml declares the same for `prefect deploy --all`.
#   deploy/production/register.sh [POOL_CONCURRENCY]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${PREFECT_API_URL:?point it at the Prefect server, e.g. http://prefect.internal:4200/api}"
case "$PREFECT_API_URL" in  # a remote server demands its auth string (docs/security.md)
    http://127.*|http://localhost*) ;;
    *) : "${PREFECT_API_AUTH_STRING:?the Prefect server is remote: set PREFECT_API_AUTH_STRING (user:password)}" ;;
esac
export PREFECT_SERVER_ANALYTICS_ENABLED=false
"$ROOT/.venv/bin/python" -m deploy.deployments register "${1:-8}"
"$ROOT/.venv/bin/prefect" deployment ls
