#!/usr/bin/env bash
# Try the production layout on this machine: one throwaway PostgreSQL cluster holding both
# databases, one Prefect server on it, the process work pool with every deployment registered,
# and TWO workers. Submits a morning check through the morning-check deployment, runs a sweep and
# several render runs, and checks that every run completed and that both workers took runs.
#
#   deploy/production/try-two-workers.sh            (uses deploy/testdb.sh for the cluster)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -z "${BAOXUE_TEST_PG_URL:-}" ]; then
    exec "$ROOT/deploy/testdb.sh" run -- "$0" "$@"
fi
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
WORK="$(mktemp -d /tmp/baoxue-2w.XXXXXX)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    sleep 2
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then echo "[2w] kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Two databases on the one cluster: baoxue and prefect.
eval "$("$PY" - <<'PYEOF'
import os
from sqlalchemy import create_engine, make_url, text
url = make_url(os.environ["BAOXUE_TEST_PG_URL"])
admin = create_engine(url, isolation_level="AUTOCOMMIT")
with admin.connect() as c:
    for db in ("baoxue", "prefect"):
        c.execute(text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{db}"'))
print("export BAOXUE_DATABASE_URL='%s'" % url.set(database="baoxue").render_as_string(hide_password=False))
print("export PREFECT_API_DATABASE_CONNECTION_URL='%s'" % url.set(drivername="postgresql+asyncpg", database="prefect").render_as_string(hide_password=False))
PYEOF
)"
PORT="$("$PY" -c 'from deploy.local import free_port; print(free_port())')"
export PREFECT_HOME="$WORK/prefect" PREFECT_API_URL="http://127.0.0.1:$PORT/api" PREFECT_SERVER_ANALYTICS_ENABLED=false
export BAOXUE_ARCHIVE_DIR="$WORK/archive" BAOXUE_HOME="$ROOT" PREFECT_WORKER_QUERY_SECONDS=2 PREFECT_LOGGING_LEVEL=INFO
# production settings (docs/security.md): a real secret key, and the Prefect API behind its auth string
BAOXUE_SECRET_KEY="$("$PY" -c 'import secrets; print(secrets.token_hex(32))')"
PREFECT_SERVER_API_AUTH_STRING="baoxue:$("$PY" -c 'import secrets; print(secrets.token_hex(16))')"
export BAOXUE_PRODUCTION=1 BAOXUE_SECRET_KEY PREFECT_SERVER_API_AUTH_STRING PREFECT_API_AUTH_STRING="$PREFECT_SERVER_API_AUTH_STRING"

echo "[2w] Prefect server on PostgreSQL, 127.0.0.1:$PORT"
deploy/production/prefect-server.sh "$PORT" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
"$PY" -c "from deploy.local import wait_healthy; wait_healthy('$PREFECT_API_URL/health', timeout=120)"

echo "[2w] Baoxue database on PostgreSQL: schema, policies, calendars, a small county"
"$PY" - <<'PYEOF'
from datetime import datetime
from store.bootstrap import init_store
from store.db import make_engine, session_factory, transaction
from demo.synthetic import Size, generate_county
engine = make_engine()
init_store(engine, now=datetime(2026, 11, 1))
with transaction(session_factory(engine)) as s:
    print(generate_county(s, seed=3, size=Size(townships=1, schools_per_township=2, pupils_per_class=8)))
PYEOF

echo "[2w] work pool + deployments"
deploy/production/register.sh 4 >"$WORK/register.log" 2>&1 || { cat "$WORK/register.log"; exit 1; }
for n in 1 2; do
    deploy/production/worker.sh "worker-$n" >"$WORK/worker-$n.log" 2>&1 &
    PIDS+=($!)
done

echo "[2w] submitting runs"
"$PY" deploy/production/check_two_workers.py "$WORK"
