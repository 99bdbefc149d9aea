#!/usr/bin/env bash
# Throwaway PostgreSQL for the store tests, from Debian's packages, on loopback.
#
#   export LEAKTRACE_TEST_PG_URL="$(scripts/pg-test-server.sh start)"
#   cargo test -p leaktrace-store
#   scripts/pg-test-server.sh stop
#
# Commands:
#   start   initialise (first time) and start the server; print the URL on stdout
#           (everything else goes to stderr). Starting a running server just
#           prints the URL again.
#   url     print the URL
#   url-tls print a URL that requires TLS and checks the server's certificate
#           (sslmode=verify-full against the throwaway CA that signed the server's
#           certificate)
#   status  exit 0 if running
#   stop    stop the server and delete its data directory
#
# The server listens on 127.0.0.1 only, port $LEAKTRACE_PG_PORT (default 55432),
# with its Unix socket and data under $LEAKTRACE_PG_DIR (default
# /tmp/leaktrace-pg-test). It runs as the `postgres` system user when this
# script runs as root (PostgreSQL refuses to run as root), else as the caller.
# The URL's role owns the test database and may CREATE DATABASE: the tests make
# one database per test and drop it afterwards.
#
# Throwaway credentials (loopback only, no data worth protecting).
set -euo pipefail

PG_VERSION="${LEAKTRACE_PG_VERSION:-15}"
PGBIN="${LEAKTRACE_PG_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}"
BASE="${LEAKTRACE_PG_DIR:-/tmp/leaktrace-pg-test}"
PORT="${LEAKTRACE_PG_PORT:-55432}"
DATA="$BASE/data"
SOCK="$BASE/sock"
LOG="$BASE/server.log"
ROLE=leaktrace
PASSWORD=leaktrace-test
DB=leaktrace_test
# The plain URL asks for no TLS (the server offers it; the store tests are about SQL, and
# `sslmode=prefer` would make every one of them a TLS test); the TLS URL requires it.
BASE_URL="postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB"
URL="$BASE_URL?sslmode=disable"
TLS="$BASE/tls"
TLS_URL="$BASE_URL?sslmode=verify-full&sslrootcert=$TLS/ca.crt"

log() { printf 'pg-test-server: %s\n' "$*" >&2; }

install_if_missing() {
    if [[ -x "$PGBIN/initdb" ]]; then
        return
    fi
    if [[ "$(id -u)" -ne 0 ]]; then
        log "$PGBIN/initdb not found; install Debian's postgresql-$PG_VERSION (needs root)"
        exit 1
    fi
    log "installing postgresql-$PG_VERSION from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends "postgresql-$PG_VERSION" >&2
}

# Runs a command as the server's owner.
as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

is_running() {
    [[ -f "$DATA/PG_VERSION" ]] && as_owner "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

psql_admin() {
    as_owner "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d postgres "$@"
}

start() {
    install_if_missing
    if is_running; then
        log "already running"
        echo "$URL"
        return
    fi
    mkdir -p "$BASE"
    if [[ "$(id -u)" -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
        chown postgres: "$BASE"
    fi
    as_owner mkdir -p "$SOCK"
    if [[ ! -f "$DATA/PG_VERSION" ]]; then
        log "initdb $DATA"
        # Superuser `postgres`: peer-free trust on the private Unix socket only;
        # TCP (loopback) needs a password (scram-sha-256).
        as_owner "$PGBIN/initdb" -D "$DATA" -U postgres --encoding=UTF8 --locale=C.UTF-8 \
            --auth-local=trust --auth-host=scram-sha-256 --data-checksums >&2
    fi
    if [[ ! -f "$TLS/server.crt" ]]; then
        # A throwaway CA and a server certificate for 127.0.0.1 signed by it, so clients can
        # test TLS with full verification (sslrootcert = the CA).
        mkdir -p "$TLS"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -subj "/CN=leaktrace test CA" -keyout "$TLS/ca.key" -out "$TLS/ca.crt" 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
            -subj "/CN=127.0.0.1" -keyout "$TLS/server.key" -out "$TLS/server.csr" 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' \
            >"$TLS/server.ext"
        openssl x509 -req -in "$TLS/server.csr" -CA "$TLS/ca.crt" -CAkey "$TLS/ca.key" \
            -CAcreateserial -days 30 -extfile "$TLS/server.ext" -out "$TLS/server.crt" 2>/dev/null
        rm -f "$TLS/ca.key" "$TLS/server.csr"
        chmod 600 "$TLS/server.key"
        chmod 644 "$TLS/server.crt" "$TLS/ca.crt"
        chmod 755 "$TLS"
        if [[ "$(id -u)" -eq 0 ]]; then
            chown postgres: "$TLS/server.key" "$TLS/server.crt"
        fi
    fi
    log "starting on 127.0.0.1:$PORT (log: $LOG)"
    # Dynamic shared memory (parallel query) in files under the data directory, not /dev/shm:
    # containers often give /dev/shm 64 MB, and a parallel scan of a large sort then fails
    # with "could not resize shared memory segment".
    # No autovacuum: the tests drop each database they made with DROP DATABASE ... WITH (FORCE),
    # which a non-superuser cannot do while an autovacuum worker (a superuser backend) is in it
    # ("must be a member of the role whose process is being terminated"), as after a bulk insert.
    as_owner "$PGBIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
        -o "-k $SOCK -c listen_addresses=127.0.0.1 -p $PORT -c fsync=on -c max_connections=200 -c dynamic_shared_memory_type=mmap -c autovacuum=off -c ssl=on -c ssl_cert_file=$TLS/server.crt -c ssl_key_file=$TLS/server.key" \
        start >&2
    if ! psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'" | grep -q 1; then
        psql_admin -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
    fi
    if ! psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
        psql_admin -c "CREATE DATABASE $DB OWNER $ROLE"
    fi
    echo "$URL"
}

stop() {
    if is_running; then
        log "stopping"
        as_owner "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
    fi
    if [[ -d "$BASE" ]]; then
        rm -rf "$BASE"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    url) echo "$URL" ;;
    url-tls) echo "$TLS_URL" ;;
    status) is_running ;;
    *)
        echo "usage: $0 start|stop|url|url-tls|status" >&2
        exit 2
        ;;
esac
