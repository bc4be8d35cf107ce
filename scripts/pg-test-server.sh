#!/usr/bin/env bash
# A throwaway PostgreSQL server for syncform's tests.
#
#   scripts/pg-test-server.sh start   start one (installing Debian's postgresql when missing and root);
#                                     prints its URL on stdout, e.g. postgresql://syncform@127.0.0.1:40123/syncform_test
#   scripts/pg-test-server.sh url     print the URL of the running one
#   scripts/pg-test-server.sh stop    stop it and remove its directory
#
# Then: SYNCFORM_TEST_POSTGRES=$(scripts/pg-test-server.sh start) .venv/bin/python -m pytest tests/state tests/state_pg
#
# The cluster lives in a fresh temporary directory owned by an unprivileged user (syncform-pg, created
# when needed, else nobody; the current user when not root), listens on 127.0.0.1 only, on a free port,
# with its unix socket in that directory. Role "syncform" connects from loopback without a password (a
# throwaway test cluster); every other role needs a password (scram-sha-256), which the tests use to
# check how authentication failures are reported.
#
# Environment: SYNCFORM_PG_BINDIR (directory holding initdb and pg_ctl: skips the search),
# SYNCFORM_PG_LIBDIR (where to look for */bin, default /usr/lib/postgresql), SYNCFORM_PG_NO_INSTALL=1
# (never apt-get install), SYNCFORM_PG_USER (the unprivileged user to run it as, when root),
# SYNCFORM_PG_POINTER (file remembering the running server's directory).
# Messages go to stderr; only the URL goes to stdout. Exit status 1 when no server could be started.
set -euo pipefail

POINTER="${SYNCFORM_PG_POINTER:-${TMPDIR:-/tmp}/syncform-pg-test.current}"
LIBDIR="${SYNCFORM_PG_LIBDIR:-/usr/lib/postgresql}"
DBNAME=syncform_test
ROLE=syncform

say() { printf 'pg-test-server: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

has_bins() { [ -n "$1" ] && [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ]; }

find_bindir() {
  local d
  if [ -n "${SYNCFORM_PG_BINDIR:-}" ]; then
    has_bins "$SYNCFORM_PG_BINDIR" && { echo "$SYNCFORM_PG_BINDIR"; return 0; }
    say "SYNCFORM_PG_BINDIR=$SYNCFORM_PG_BINDIR has no initdb and pg_ctl"
    return 1
  fi
  if command -v pg_config >/dev/null 2>&1; then
    d="$(pg_config --bindir 2>/dev/null || true)"
    has_bins "$d" && { echo "$d"; return 0; }
  fi
  # the newest version first
  for d in $(ls -d "$LIBDIR"/*/bin 2>/dev/null | sort -t/ -k1,1 -V -r); do
    has_bins "$d" && { echo "$d"; return 0; }
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    d="$(dirname "$(readlink -f "$(command -v initdb)")")"
    has_bins "$d" && { echo "$d"; return 0; }
    dirname "$(command -v initdb)"
    return 0
  fi
  return 1
}

install_postgres() {
  if [ "${SYNCFORM_PG_NO_INSTALL:-}" = 1 ]; then
    say "PostgreSQL binaries not found (looked at SYNCFORM_PG_BINDIR, pg_config --bindir, $LIBDIR/*/bin, PATH) and SYNCFORM_PG_NO_INSTALL=1"
    return 1
  fi
  if [ "$(id -u)" != 0 ]; then
    say "PostgreSQL binaries not found (looked at pg_config --bindir, $LIBDIR/*/bin, PATH) and not root, so not installing; install PostgreSQL (Debian: apt-get install postgresql) or set SYNCFORM_PG_BINDIR"
    return 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    say "PostgreSQL binaries not found and there is no apt-get to install them; install PostgreSQL or set SYNCFORM_PG_BINDIR"
    return 1
  fi
  say "PostgreSQL binaries not found; installing Debian's postgresql package"
  if ! (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq postgresql) >&2; then
    say "apt-get install postgresql failed"
    return 1
  fi
}

# the unprivileged user that owns and runs the cluster
pick_user() {
  if [ "$(id -u)" != 0 ]; then id -un; return 0; fi
  if [ -n "${SYNCFORM_PG_USER:-}" ]; then
    id "$SYNCFORM_PG_USER" >/dev/null 2>&1 && { echo "$SYNCFORM_PG_USER"; return 0; }
    say "SYNCFORM_PG_USER=$SYNCFORM_PG_USER is not a user here"; return 1
  fi
  if id syncform-pg >/dev/null 2>&1; then echo syncform-pg; return 0; fi
  if command -v useradd >/dev/null 2>&1 &&
     useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin syncform-pg >/dev/null 2>&1; then
    echo syncform-pg; return 0
  fi
  id nobody >/dev/null 2>&1 && { echo nobody; return 0; }
  return 1
}

as_user() {  # as_user USER CMD... (runs CMD as USER, from a directory USER can read)
  local user="$1"; shift
  if [ "$(id -un)" = "$user" ]; then (cd / && "$@"); return; fi
  if command -v runuser >/dev/null 2>&1; then (cd / && runuser -u "$user" -- "$@"); return; fi
  if command -v setpriv >/dev/null 2>&1; then
    (cd / && setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --clear-groups -- "$@"); return
  fi
  local q; q="$(printf '%q ' "$@")"
  (cd / && su -s /bin/sh "$user" -c "$q")
}

free_port() {
  local py
  for py in python3 python; do
    if command -v "$py" >/dev/null 2>&1; then
      "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
      return 0
    fi
  done
  echo $(( 20000 + RANDOM % 20000 ))
}

server_alive() {  # server_alive DIR: its postmaster is running (not just some process with a reused pid)
  local pid; pid="$(head -n 1 "$1/data/postmaster.pid" 2>/dev/null)" || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "-D $1/data" || return 1
  fi
}

cmd_start() {
  if [ -f "$POINTER" ]; then
    local old; old="$(cat "$POINTER")"
    if [ -f "$old/url" ] && [ -f "$old/data/postmaster.pid" ] && server_alive "$old"; then
      say "a test server is already running in $old (stop it first with: $0 stop)"
      cat "$old/url"; return 0
    fi
    case "$old" in "${TMPDIR:-/tmp}"/syncform-pg.*) rm -rf "$old";; esac  # left by a server that died
    rm -f "$POINTER"
  fi
  local bindir
  if ! bindir="$(find_bindir)"; then
    install_postgres || return 1
    bindir="$(find_bindir)" || die "installed postgresql but still found no initdb/pg_ctl under $LIBDIR/*/bin or on PATH"
  fi
  local user; user="$(pick_user)" || die "no unprivileged user to run PostgreSQL as (set SYNCFORM_PG_USER to one, or let this script create syncform-pg)"
  local dir; dir="$(mktemp -d "${TMPDIR:-/tmp}/syncform-pg.XXXXXX")"
  chmod 700 "$dir"
  mkdir "$dir/sock"
  [ "$(id -un)" = "$user" ] || chown -R "$user" "$dir"
  local port; port="$(free_port)"
  say "initdb in $dir as $user with $bindir"
  if ! as_user "$user" "$bindir/initdb" -D "$dir/data" -U "$ROLE" -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 &&
     ! as_user "$user" "$bindir/initdb" -D "$dir/data" -U "$ROLE" -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1; then
    say "initdb failed:"; sed 's/^/  /' "$dir/initdb.log" >&2 || true
    rm -rf "$dir"; return 1
  fi
  cat >"$dir/data/pg_hba.conf" <<EOF
# syncform test cluster: the test role from loopback and the socket without a password, others with one
local all $ROLE trust
host  all $ROLE 127.0.0.1/32 trust
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
EOF
  [ "$(id -un)" = "$user" ] || chown "$user" "$dir/data/pg_hba.conf"
  if ! as_user "$user" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
       -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
       start >/dev/null 2>&1; then
    say "the server did not start:"; tail -n 20 "$dir/server.log" 2>/dev/null | sed 's/^/  /' >&2 || true
    rm -rf "$dir"; return 1
  fi
  echo "$dir" >"$POINTER"
  # psql from the same bindir creates the database and a role with a password (for the auth tests)
  if ! as_user "$user" "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir/sock" -p "$port" -U "$ROLE" -d postgres \
       -c "CREATE DATABASE $DBNAME" -c "CREATE ROLE syncform_pw LOGIN PASSWORD 'syncform-test-only'" \
       -c "GRANT ALL ON DATABASE $DBNAME TO syncform_pw" >"$dir/setup.log" 2>&1; then
    say "creating the test database failed:"; sed 's/^/  /' "$dir/setup.log" >&2 || true
    cmd_stop; return 1
  fi
  local url="postgresql://$ROLE@127.0.0.1:$port/$DBNAME"
  echo "$url" >"$dir/url"
  echo "$user" >"$dir/user"
  echo "$bindir" >"$dir/bindir"
  say "PostgreSQL ($("$bindir/postgres" --version 2>/dev/null || echo '?')) running as $user on 127.0.0.1:$port; stop with: $0 stop"
  echo "$url"
}

cmd_url() {
  [ -f "$POINTER" ] && [ -f "$(cat "$POINTER")/url" ] || die "no test server is running (start one with: $0 start)"
  cat "$(cat "$POINTER")/url"
}

cmd_stop() {
  [ -f "$POINTER" ] || { say "no test server is running"; return 0; }
  local dir; dir="$(cat "$POINTER")"
  case "$dir" in
    "${TMPDIR:-/tmp}"/syncform-pg.*) ;;
    *) die "refusing to remove $dir (not a directory this script made)";;
  esac
  if [ -f "$dir/data/postmaster.pid" ]; then
    local user bindir
    user="$(cat "$dir/user" 2>/dev/null || id -un)"
    bindir="$(cat "$dir/bindir" 2>/dev/null || find_bindir || true)"
    as_user "$user" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || {
      # last resort: the postmaster's pid is the first line of postmaster.pid
      kill -QUIT "$(head -n 1 "$dir/data/postmaster.pid")" 2>/dev/null || true
    }
  fi
  rm -rf "$dir"
  rm -f "$POINTER"
  say "stopped and removed $dir"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  url) cmd_url ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
