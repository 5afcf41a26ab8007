# pg.sh — a throw-away PostgreSQL server for tests (source it).
#   pg_start   initdb in a temp dir, pg_ctl start on 127.0.0.1 and a free port;
#              sets PG_URL (postgresql://postgres@127.0.0.1:PORT/moeserve) and PG_PORT
#   pg_stop    stops it (fast) and removes the temp dir; idempotent
#   pg_pause / pg_resume   stop / start the same cluster (to test a lost database)
# As root the server runs as user postgres (initdb refuses root); else as the
# current user. Binaries: Debian's /usr/lib/postgresql/<version>/bin.
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
PG_DIR="${PG_DIR:-}"   # kept when set: pg_pause/pg_resume from a child shell
PG_URL="${PG_URL:-}"
PG_PORT="${PG_PORT:-}"

_pg_as() {  # from /: the caller's directory may be closed to user postgres (pg_ctl needs getcwd)
  if [ "$(id -u)" -eq 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

_pg_free_port() {
  node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}

pg_start() {
  [ -x "$PG_BIN/initdb" ] || { echo "pg.sh: PostgreSQL binaries not found (apt-get install postgresql)" >&2; return 1; }
  PG_DIR="$(mktemp -d /tmp/ms-pg-XXXXXX)"
  chmod 755 "$PG_DIR"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$PG_DIR"; fi
  _pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres -A trust --no-sync -E UTF8 >"$PG_DIR/initdb.log" 2>&1 ||
    { cat "$PG_DIR/initdb.log" >&2; return 1; }
  PG_PORT="$(_pg_free_port)"
  _pg_resume_cmd || { cat "$PG_DIR/server.log" >&2; return 1; }
  _pg_as "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres moeserve || return 1
  PG_URL="postgresql://postgres@127.0.0.1:$PG_PORT/moeserve"
  export PG_URL PG_PORT PG_DIR
}

_pg_resume_cmd() {
  _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c max_connections=100" start >/dev/null
}

pg_pause() { _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null; }
pg_resume() { _pg_resume_cmd; }

pg_stop() {
  if [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ]; then
    _pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
  fi
  PG_DIR=""
}
