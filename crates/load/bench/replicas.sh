#!/usr/bin/env bash
# PostgreSQL figures: REPLICAS replicas of each bureau (1 or more) over one fresh database per
# bureau, every replica's peer being every replica of the other bureau (mutual TLS, development
# certificates), driven by `yibao load` applying at and watching from every replica in turn
# (`--out URL1,URL2 --in URL1,URL2`). Run ROUNDS times, each on new databases.
#
# usage: crates/load/bench/replicas.sh REPLICAS [ROUNDS] [SECONDS] [CONCURRENCY]
#        (defaults: 2 rounds of 20 s at 256 in flight)
# needs: a release build (cargo build --release --bins; CARGO_TARGET_DIR is honoured), psql,
#        and a PostgreSQL server at YIBAO_TEST_DATABASE_URL:
#        eval "$(scripts/postgres-test-cluster.sh start)"
set -euo pipefail
cd "$(dirname "$0")/../../.."
replicas=${1:?usage: replicas.sh REPLICAS [ROUNDS] [SECONDS] [CONCURRENCY]}
rounds=${2:-2}
seconds=${3:-20}
concurrency=${4:-256}
bin=${CARGO_TARGET_DIR:-target}/release
server=${YIBAO_TEST_DATABASE_URL:?no server: eval \"\$(scripts/postgres-test-cluster.sh start)\"}
work=$(mktemp -d "${TMPDIR:-/tmp}/yibao-replicas.XXXXXX")
pids=()
databases=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2> /dev/null || true; done
  pids=()
  for db in "${databases[@]}"; do
    psql "$server" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" > /dev/null || true
  done
  databases=()
}
# YIBAO_KEEP_DATA=1 keeps the services' logs (the directory is printed).
trap 'cleanup; if [ -n "${YIBAO_KEEP_DATA:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi' EXIT

"$bin/yibao" certs --out "$work/certs" > /dev/null

# start ROLE REPLICA DATABASE PEERS: one replica on fixed loopback ports of its own.
start() {
  local role=$1 k=$2 db=$3 peers=$4 base
  base=$([ "$role" = transfer-out ] && echo 23100 || echo 23300)
  YIBAO_LISTEN=127.0.0.1:$((base + k)) YIBAO_PLATFORM_LISTEN=127.0.0.1:$((base + 100 + k)) \
    YIBAO_DATABASE_URL="${server%/*}/$db" YIBAO_PEER="$peers" YIBAO_ADMIN=true \
    YIBAO_DATA_DIR="$work/$role.$k" YIBAO_DIRECTORY=deploy/regions.toml \
    YIBAO_TLS_CA="$work/certs/ca.pem" YIBAO_TLS_CERT="$work/certs/$role.pem" \
    YIBAO_TLS_KEY="$work/certs/$role.key" NO_COLOR=1 \
    "$bin/$role" > "$work/$role.$k.log" 2>&1 &
  pids+=($!)
}

# endpoints SCHEME BASE: every replica's address from port BASE on, comma-separated.
endpoints() {
  local list=() k
  for k in $(seq 0 $((replicas - 1))); do list+=("$1://127.0.0.1:$(($2 + k))"); done
  (IFS=,; echo "${list[*]}")
}

run() { # round
  local out_db=yibao_bench_out_$$_$1 in_db=yibao_bench_in_$$_$1 k
  for db in "$out_db" "$in_db"; do
    psql "$server" -qc "CREATE DATABASE $db" > /dev/null
    databases+=("$db")
  done
  for k in $(seq 0 $((replicas - 1))); do
    start transfer-out "$k" "$out_db" "$(endpoints https 23400)"
    start transfer-in "$k" "$in_db" "$(endpoints https 23200)"
  done
  local checks=() tries=0
  for k in $(seq 0 $((replicas - 1))); do
    checks+=(--endpoint "http://127.0.0.1:$((23100 + k))" --endpoint "http://127.0.0.1:$((23300 + k))")
  done
  until "$bin/yibao" health "${checks[@]}" > /dev/null 2>&1; do
    tries=$((tries + 1))
    [ "$tries" -lt 150 ] || { tail -n 20 "$work"/*.log; exit 1; }
    sleep 0.2
  done
  echo "== $replicas replica(s) of each bureau, round $1"
  "$bin/yibao" load --out "$(endpoints http 23100)" --in "$(endpoints http 23300)" \
    --persons 60000 --duration "${seconds}s" --concurrency "$concurrency" --no-progress \
    --no-report 2>&1 | tee "$work/load-$1.txt" | grep -E "transfers/s|end-to-end|ApplyTransfer |failed|ledger" || true
  cleanup
}

for round in $(seq "$rounds"); do
  run "$round"
done
