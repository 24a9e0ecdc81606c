#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the test suite.
#
#   deploy/testdb.sh run -- COMMAND [ARGS...]
#
# initdb's a new cluster in a temporary directory, starts it on 127.0.0.1 at a free port, creates
# the database baoxue_test, exports
#   BAOXUE_TEST_PG_URL=postgresql+psycopg://baoxue:<random>@127.0.0.1:<port>/baoxue_test
# runs COMMAND, then stops the cluster and deletes the directory (also on error or Ctrl-C), and
# exits with COMMAND's exit code. PostgreSQL refuses to run as root, so as root the cluster is
# owned by and run as the `postgres` user (created by Debian's postgresql package).
#
# Environment: PG_BINDIR (default: the newest /usr/lib/postgresql/*/bin), PGTEST_ROOT (parent of
# the cluster directory, default .pgtest/ in the repository, or /tmp when the postgres user
# cannot reach the repository).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$PATH:/usr/sbin:/sbin"

log() { printf '[testdb] %s\n' "$*" >&2; }

pg_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then
        echo "$PG_BINDIR"; return
    fi
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then
        log "PostgreSQL server binaries not found in /usr/lib/postgresql/*/bin (run deploy/setup.sh system)"
        exit 1
    fi
    echo "$dir"
}

# Run a command as the cluster's owner: ourselves, or `postgres` when we are root.
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

free_port() {
    python3 - <<'EOF'
import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
EOF
}

BIN=""
BASE=""
DATA=""

stop_cluster() {
    if [ -n "$DATA" ] && [ -f "$DATA/postmaster.pid" ]; then
        as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ -n "$BASE" ]; then
        rm -rf "$BASE"
    fi
}

start_cluster() {
    BIN="$(pg_bindir)"
    local parent="${PGTEST_ROOT:-$ROOT/.pgtest}"
    mkdir -p "$parent"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 || { log "user postgres missing (install the postgresql package)"; exit 1; }
        chmod 755 "$parent"
        if ! runuser -u postgres -- test -x "$parent"; then
            parent="${TMPDIR:-/tmp}"   # e.g. a checkout under /root that postgres cannot enter
        fi
    fi
    BASE="$(mktemp -d "$parent/pg.XXXXXX")"
    DATA="$BASE/data"
    local password port attempt
    password="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    printf '%s\n' "$password" >"$BASE/pwfile"
    chmod 600 "$BASE/pwfile"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres: "$BASE"
    fi

    as_owner "$BIN/initdb" -D "$DATA" -U baoxue --pwfile="$BASE/pwfile" --auth=scram-sha-256 \
        --encoding=UTF8 --no-locale --no-sync >"$BASE/initdb.log" 2>&1 \
        || { cat "$BASE/initdb.log" >&2; exit 1; }
    # Speed over durability: the cluster lives for one test run.
    as_owner tee -a "$DATA/postgresql.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
EOF

    for attempt in 1 2 3 4 5; do
        port="$(free_port)"
        if as_owner "$BIN/pg_ctl" -D "$DATA" -l "$BASE/server.log" -o "-p $port" -w -t 60 start >/dev/null; then
            break
        fi
        if [ "$attempt" -eq 5 ]; then
            cat "$BASE/server.log" >&2 || true
            log "could not start PostgreSQL"
            exit 1
        fi
    done

    PGPASSWORD="$password" "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U baoxue -d postgres \
        -c 'CREATE DATABASE baoxue_test' >/dev/null
    export BAOXUE_TEST_PG_URL="postgresql+psycopg://baoxue:${password}@127.0.0.1:${port}/baoxue_test"
    log "PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port ($DATA)"
}

case "${1:-}" in
    run)
        shift
        [ "${1:-}" = "--" ] && shift
        [ "$#" -gt 0 ] || { echo "usage: $0 run -- COMMAND [ARGS...]" >&2; exit 2; }
        trap stop_cluster EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        start_cluster
        # Run the command in the background so a signal to this script interrupts `wait` at once;
        # it is passed on as TERM (a background child ignores SIGINT), then the EXIT trap cleans up.
        set +e
        "$@" <&0 &
        child=$!
        trap 'kill -TERM "$child" 2>/dev/null' INT TERM
        wait "$child"
        status=$?
        while kill -0 "$child" 2>/dev/null; do
            wait "$child"
            status=$?
        done
        set -e
        exit "$status"
        ;;
    *)
        echo "usage: $0 run -- COMMAND [ARGS...]" >&2
        exit 2
        ;;
esac
