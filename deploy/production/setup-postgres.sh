#!/usr/bin/env bash
# Create the two databases and their roles on a PostgreSQL cluster (run once, as a superuser).
#
#   PGHOST=db.internal PGUSER=postgres deploy/production/setup-postgres.sh BAOXUE_PW PREFECT_PW
#
# baoxue  — Baoxue's cases, documents, reports (schema by `baoxue init`: Alembic migrations)
# prefect — Prefect's own state (schema by the Prefect server at start)
set -euo pipefail
[ "$#" -eq 2 ] || { echo "usage: $0 BAOXUE_PASSWORD PREFECT_PASSWORD" >&2; exit 2; }
psql -X -v ON_ERROR_STOP=1 -v bpw="$1" -v ppw="$2" <<'SQL'
SELECT format('CREATE ROLE baoxue LOGIN PASSWORD %L', :'bpw') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'baoxue') \gexec
SELECT format('CREATE ROLE prefect LOGIN PASSWORD %L', :'ppw') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'prefect') \gexec
SELECT 'CREATE DATABASE baoxue OWNER baoxue ENCODING ''UTF8''' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'baoxue') \gexec
SELECT 'CREATE DATABASE prefect OWNER prefect ENCODING ''UTF8''' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'prefect') \gexec
SQL
echo "databases baoxue and prefect ready"
