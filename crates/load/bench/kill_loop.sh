#!/usr/bin/env bash
# Kill -9 loop under load: starts transfer-out and transfer-in on fixed loopback ports (below
# Linux's ephemeral range, so a restart can always bind), drives them with `yibao load`, and
# kills -9 and restarts one side, then the other, every few seconds; the platform hop between
# them is mutual TLS (development certificates made with `yibao certs`). At the end the load
# generator checks the ledger of both bureaus (conservation to the cent, nothing left open).
# Failed applications are expected (a bureau was down); the ledger must hold.
#
# usage: crates/load/bench/kill_loop.sh [SECONDS] [KILLS]        (defaults: 40 and 10)
# needs: a release build (cargo build --release --bins)
set -euo pipefail
cd "$(dirname "$0")/../../.."
seconds=${1:-40}
kills=${2:-10}
work=$(mktemp -d "${TMPDIR:-/tmp}/yibao-kill-loop.XXXXXX")
out_port=21051
in_port=21052
bin=target/release
"$bin/yibao" certs --out "$work/certs" > /dev/null
start() { # role port peer-port: the platform listens on port + 10
  "$bin/$1" --listen "127.0.0.1:$2" --platform-listen "127.0.0.1:$(( $2 + 10 ))" \
    --peer "https://127.0.0.1:$(( $3 + 10 ))" --tls-ca "$work/certs/ca.pem" \
    --tls-cert "$work/certs/$1.pem" --tls-key "$work/certs/$1.key" --data-dir "$work/$1" \
    --directory deploy/regions.toml --admin --test-clock >> "$work/$1.log" 2>&1 &
  echo $! > "$work/$1.pid"
  disown
}
stop_all() {
  for role in transfer-out transfer-in; do
    [ -f "$work/$role.pid" ] && kill "$(cat "$work/$role.pid")" 2> /dev/null || true
  done
}
trap stop_all EXIT
listening() { # port: polls until something accepts there, 10 s at most
  for _ in $(seq 1 100); do
    (exec 3<> "/dev/tcp/127.0.0.1/$1") 2> /dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2
  return 1
}
start transfer-out $out_port $in_port
start transfer-in $in_port $out_port
listening $out_port
listening $in_port
"$bin/yibao" load --out "http://127.0.0.1:$out_port" --in "http://127.0.0.1:$in_port" \
  --duration "${seconds}s" --concurrency 256 --settle-timeout 120s --no-progress --no-report \
  > "$work/load.txt" 2>&1 &
load=$!
interval=$(( seconds / (kills + 1) ))
for n in $(seq 1 "$kills"); do
  sleep "$interval"
  if (( n % 2 )); then role=transfer-in; port=$in_port; peer=$out_port;
  else role=transfer-out; port=$out_port; peer=$in_port; fi
  kill -9 "$(cat "$work/$role.pid")"
  sleep 0.5
  start "$role" "$port" "$peer"
  echo "kill $n: $role killed -9 and restarted"
done
wait "$load" || true
cat "$work/load.txt" | grep -vE "^\s*$" | tail -12
echo "logs: $work"
