#!/usr/bin/env bash
# Start one Baoxue worker on this host: it polls the process work pool, runs each flow run as a
# subprocess of this checkout's .venv and heartbeats (the UI's Work Pools page shows it with its
# health). Run one per core you give Baoxue (systemd: baoxue-worker@N). The environment names
# Baoxue's database and the document archive (BAOXUE_DATABASE_URL, BAOXUE_ARCHIVE_DIR): the runs inherit it.
#   deploy/production/worker.sh [NAME]
# The worker verifies each morning check's signature with BAOXUE_SECRET_KEY (the web app's own);
# a server on another host demands PREFECT_API_AUTH_STRING (docs/security.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
: "${PREFECT_API_URL:?}" "${BAOXUE_DATABASE_URL:?}"
"$ROOT/deploy/production/check-env.sh"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
exec "$ROOT/.venv/bin/prefect" worker start --pool baoxue-process --type process \
    --name "${1:-baoxue-$(hostname)-$$}"
