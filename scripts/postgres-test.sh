#!/usr/bin/env bash
# postgres-test.sh starts a throwaway PostgreSQL cluster for kiln's store
# tests and prints the line that points the tests at it:
#
#   eval "$(scripts/postgres-test.sh)"      # sets KILN_TEST_POSTGRES
#
# It is idempotent: it installs Debian's postgresql package only when no
# server binary is present, creates the cluster only once, and starts it only
# when it is not running. The cluster listens on 127.0.0.1 only (and on a
# Unix socket inside its own directory), owned by the postgres user.
# Everything but the export line goes to stderr.
#
# Settings (environment): KILN_PG_DIR (default /tmp/kiln-postgres),
# KILN_PG_PORT (default 54329), KILN_PG_PASSWORD (default kiln_test).
# Stop it with: scripts/postgres-test.sh stop
set -euo pipefail

PGDIR=${KILN_PG_DIR:-/tmp/kiln-postgres}
PORT=${KILN_PG_PORT:-54329}
PASSWORD=${KILN_PG_PASSWORD:-kiln_test}
ROLE=kiln_test
DB=kiln_test

log() { echo "postgres-test: $*" >&2; }
die() { log "$*"; exit 1; }

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

BIN=$(bindir)
if [ -z "$BIN" ] || [ ! -x "$BIN/postgres" ]; then
	[ "$(id -u)" = 0 ] || die "postgresql is not installed and installing it needs root; run: apt-get install postgresql"
	log "installing postgresql from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq --no-install-recommends postgresql >&2
	BIN=$(bindir)
	[ -n "$BIN" ] && [ -x "$BIN/postgres" ] || die "postgresql installed but no server binary under /usr/lib/postgresql/*/bin"
fi

# PostgreSQL refuses to run as root: run its tools as the postgres user then.
if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
	as_pg() { runuser -u postgres -- "$@"; }
else
	as_pg() { "$@"; }
fi

if [ "${1:-}" = stop ]; then
	if [ -d "$PGDIR/data" ]; then
		as_pg "$BIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >&2 || true
	fi
	exit 0
fi

mkdir -p "$PGDIR"
chmod 0700 "$PGDIR"
[ "$(id -u)" = 0 ] && chown postgres: "$PGDIR"

if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
	log "creating cluster in $PGDIR/data"
	as_pg "$BIN/initdb" -D "$PGDIR/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
		--encoding=UTF8 --locale=C.UTF-8 >"$PGDIR/initdb.log" 2>&1 ||
		die "initdb failed; see $PGDIR/initdb.log"
fi

if ! as_pg "$BIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
	log "starting PostgreSQL on 127.0.0.1:$PORT"
	as_pg "$BIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 \
		-o "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$PGDIR -c max_connections=200" \
		start >&2 || die "PostgreSQL did not start; see $PGDIR/server.log"
fi

psql_admin() { as_pg "$BIN/psql" -h "$PGDIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

psql_admin -c "DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END \$\$;" >&2
if [ "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
	psql_admin -c "CREATE DATABASE $DB OWNER $ROLE" >&2
fi

echo "export KILN_TEST_POSTGRES='postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB?sslmode=disable'"
