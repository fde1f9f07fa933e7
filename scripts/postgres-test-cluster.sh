#!/usr/bin/env bash
# A private, throw-away PostgreSQL cluster for yibao's tests and benchmarks: a temporary
# directory, 127.0.0.1 on a free port, trust authentication for its one superuser `yibao`.
#
#   eval "$(scripts/postgres-test-cluster.sh start)"   # prints the exports below, starts it
#   scripts/postgres-test-cluster.sh url               # the URL of the running cluster
#   scripts/postgres-test-cluster.sh stop              # stops it and removes its directory
#
# `start` prints `export YIBAO_TEST_DATABASE_URL=...` and `export YIBAO_PG_CLUSTER_DIR=...`; `url`
# and `stop` find the cluster through YIBAO_PG_CLUSTER_DIR (or the directory given as their
# argument). The server refuses to run as root: run as root (as CI does), the script runs it as
# the user `postgres` (created if missing) and gives it the directory. Needs initdb and pg_ctl on
# the PATH or under /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql).
set -euo pipefail

find_bin() {
  local name="$1"
  if command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
    return
  fi
  local candidate
  candidate="$(ls -d /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1 || true)"
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    echo "$candidate"
    return
  fi
  echo "postgres-test-cluster: $name not found (apt-get install postgresql)" >&2
  exit 1
}

# Runs a command as the cluster's owner: ourselves, or `postgres` when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u "$owner" -- "$@"
  else
    "$@"
  fi
}

owner_of_cluster() {
  if [ "$(id -u)" -ne 0 ]; then
    id -un
    return
  fi
  if ! id -u postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin postgres
  fi
  echo postgres
}

port_is_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start() {
  local initdb pg_ctl dir port attempt
  initdb="$(find_bin initdb)"
  pg_ctl="$(find_bin pg_ctl)"
  owner="$(owner_of_cluster)"
  dir="$(mktemp -d "${TMPDIR:-/tmp}/yibao-pg.XXXXXX")"
  chmod 755 "$dir"
  [ "$(id -u)" -eq 0 ] && chown "$owner" "$dir"
  as_owner "$initdb" -D "$dir/data" -U yibao --auth=trust --encoding=UTF8 --locale=C \
    >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
  for attempt in $(seq 1 20); do
    port=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    port_is_free "$port" || continue
    if as_owner "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300" \
        start >/dev/null 2>&1; then
      local url="postgres://yibao@127.0.0.1:$port/postgres"
      echo "$url" >"$dir/url"
      echo "export YIBAO_PG_CLUSTER_DIR=$dir"
      echo "export YIBAO_TEST_DATABASE_URL=$url"
      return
    fi
    echo "postgres-test-cluster: port $port failed (attempt $attempt), trying another" >&2
  done
  tail -n 20 "$dir/server.log" >&2 || true
  exit 1
}

cluster_dir() {
  local dir="${1:-${YIBAO_PG_CLUSTER_DIR:-}}"
  if [ -z "$dir" ] || [ ! -f "$dir/url" ]; then
    echo "postgres-test-cluster: no cluster (set YIBAO_PG_CLUSTER_DIR or pass its directory)" >&2
    exit 1
  fi
  echo "$dir"
}

stop() {
  local dir pg_ctl
  dir="$(cluster_dir "${1:-}")"
  pg_ctl="$(find_bin pg_ctl)"
  owner="$(owner_of_cluster)"
  as_owner "$pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  url) cat "$(cluster_dir "${2:-}")/url" ;;
  *) echo "usage: $0 start|stop|url [DIR]" >&2; exit 2 ;;
esac
