#!/bin/sh
# Run a command (the test suite) with a throwaway local PostgreSQL server, for
# tests/snas/test_postgres.py: `.ci/with_postgres.sh CMD [ARG...]`.
#
# - SNAS_TEST_POSTGRES_URL already set: run CMD against that server, start nothing.
# - Else find initdb/pg_ctl (PATH, then Debian's /usr/lib/postgresql/*/bin); missing and
#   root with apt-get: install Debian's postgresql package quietly (never fatal).
# - Start a cluster in a temporary folder: initdb as a non-root user when run as root
#   (the postgres user if any, else nobody), trust auth, listening on 127.0.0.1 at a free
#   port with its unix socket in the same folder, fsync off; export
#   SNAS_TEST_POSTGRES_URL=postgresql+psycopg://snas@127.0.0.1:PORT/postgres; run CMD;
#   stop the server and remove the folder, whatever CMD did. Exit with CMD's status.
# - No server possible: say so in one line and run CMD anyway (the PostgreSQL tests skip).
set -u

if [ -n "${SNAS_TEST_POSTGRES_URL:-}" ]; then
  exec "$@"
fi

find_bin() {
  command -v "$1" 2>/dev/null && return 0
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$dir/$1" ] && { echo "$dir/$1"; return 0; }
  done
  return 1
}

if ! find_bin pg_ctl >/dev/null || ! find_bin initdb >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) \
      >/dev/null 2>&1 || true
  fi
fi

PG_CTL=$(find_bin pg_ctl) || PG_CTL=
INITDB=$(find_bin initdb) || INITDB=
if [ -z "$PG_CTL" ] || [ -z "$INITDB" ]; then
  echo "with_postgres: no PostgreSQL server binaries (initdb, pg_ctl); PostgreSQL tests skip" >&2
  exec "$@"
fi

DIR=$(mktemp -d /tmp/snas-pg.XXXXXX) || exec "$@"
RUN=""
if [ "$(id -u)" = 0 ]; then
  PGUSER_OS=nobody
  id postgres >/dev/null 2>&1 && PGUSER_OS=postgres
  chown "$PGUSER_OS" "$DIR"
  if command -v runuser >/dev/null; then
    RUN="runuser -u $PGUSER_OS --"
  else
    RUN="su -s /bin/sh $PGUSER_OS -c"  # quoted below
  fi
fi
as_pg() {
  if [ -z "$RUN" ]; then "$@"
  elif [ "${RUN#su }" != "$RUN" ]; then $RUN "$*"
  else $RUN "$@"
  fi
}

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null) || PORT=55432

stop() {
  as_pg "$PG_CTL" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DIR"
}

if as_pg "$INITDB" -D "$DIR/data" -U snas -A trust -E UTF8 --locale=C --no-sync \
     >"$DIR/initdb.log" 2>&1 \
   && as_pg "$PG_CTL" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
     -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
     start >/dev/null 2>&1; then
  trap 'stop; exit 130' INT TERM
  SNAS_TEST_POSTGRES_URL="postgresql+psycopg://snas@127.0.0.1:$PORT/postgres"
  export SNAS_TEST_POSTGRES_URL
  echo "with_postgres: PostgreSQL at $SNAS_TEST_POSTGRES_URL" >&2
  "$@"
  status=$?
  stop
  exit $status
fi
echo "with_postgres: could not start PostgreSQL ($(tail -n 1 "$DIR"/*.log 2>/dev/null | tail -n 1)); PostgreSQL tests skip" >&2
stop
exec "$@"
