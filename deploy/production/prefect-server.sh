#!/usr/bin/env bash
# Run the Prefect server (API + UI) against PostgreSQL. Needs PREFECT_API_DATABASE_CONNECTION_URL.
#   deploy/production/prefect-server.sh [PORT]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${PREFECT_API_DATABASE_CONNECTION_URL:?set it to postgresql+asyncpg://prefect:…@host:5432/prefect}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
exec "$ROOT/.venv/bin/prefect" server start --host "${PREFECT_SERVER_API_HOST:-127.0.0.1}" --port "${1:-4200}"
