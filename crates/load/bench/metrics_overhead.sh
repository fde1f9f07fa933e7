#!/usr/bin/env bash
# What Prometheus metrics cost: the same load run against a pair without metrics and a pair
# with them on (both bureaus scraped every 5 s during the run, as a Prometheus would, so the
# scrape's store reads count too), alternately, ROUNDS times. The pair is `yibao up` (mutual TLS,
# test clocks) on fixed loopback ports of its own; `--no-metrics` for the runs without.
#
# usage: crates/load/bench/metrics_overhead.sh [ROUNDS] [SECONDS]    (defaults: 2 and 20)
# needs: a release build (cargo build --release --bins; CARGO_TARGET_DIR is honoured)
set -euo pipefail
cd "$(dirname "$0")/../../.."
rounds=${1:-2}
seconds=${2:-20}
bin=${CARGO_TARGET_DIR:-target}/release
work=$(mktemp -d "${TMPDIR:-/tmp}/yibao-metrics-overhead.XXXXXX")
out=http://127.0.0.1:22051
inn=http://127.0.0.1:22052
endpoints=(--out "$out" --in "$inn")
platform=(--platform-out 127.0.0.1:22061 --platform-in 127.0.0.1:22062)
up_pid=
scraper_pid=
cleanup() {
  [ -n "$scraper_pid" ] && kill "$scraper_pid" 2> /dev/null || true
  [ -n "$up_pid" ] && kill -INT "$up_pid" 2> /dev/null && wait "$up_pid" 2> /dev/null || true
}
trap 'cleanup; rm -rf "$work"' EXIT

run() { # mode (off|on) round
  local data="$work/$1-$2"
  local flags=(--no-metrics)
  [ "$1" = on ] && flags=(--metrics-out 127.0.0.1:22064 --metrics-in 127.0.0.1:22065)
  "$bin/yibao" "${endpoints[@]}" up "${platform[@]}" --data-dir "$data" --persons 0 "${flags[@]}" \
    > "$work/up-$1-$2.log" 2>&1 &
  up_pid=$!
  until grep -qs "Ctrl-C stops" "$work/up-$1-$2.log"; do
    kill -0 "$up_pid" || { cat "$work/up-$1-$2.log"; exit 1; }
    sleep 0.2
  done
  if [ "$1" = on ]; then
    ( while true; do
        curl -sf http://127.0.0.1:22064/metrics > /dev/null
        curl -sf http://127.0.0.1:22065/metrics > /dev/null
        sleep 5
      done ) &
    scraper_pid=$!
  fi
  echo "== metrics $1, round $2"
  "$bin/yibao" load --out "$out" --in "$inn" --persons 200000 --duration "${seconds}s" \
    --concurrency 768 --baseline --no-report 2>&1 | grep -E "transfers/s|baseline|ratio|CPU|ledger" || true
  cleanup
  scraper_pid=
  up_pid=
}

for round in $(seq "$rounds"); do
  run off "$round"
  run on "$round"
done
