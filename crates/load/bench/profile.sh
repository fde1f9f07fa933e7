#!/usr/bin/env bash
# Profiles both bureau services under load: starts a spawned load run, lets it warm up, records
# `perf` call graphs of transfer-in and transfer-out at the same time, and splits each profile
# into the rows of the table in BENCHMARKS.md ("Where the time goes").
#
# usage: crates/load/bench/profile.sh [CONCURRENCY] [SECONDS]     (defaults: 768 and 4)
# needs: perf (linux-perf), a release build (cargo build --release --bins)
set -euo pipefail
cd "$(dirname "$0")/../../.."
concurrency=${1:-768}
seconds=${2:-4}
out=${TMPDIR:-/tmp}/yibao-profile
mkdir -p "$out"
target/release/yibao load --spawn --persons 300000 --duration $((seconds + 16))s \
  --concurrency "$concurrency" --no-progress --no-report > "$out/load.txt" 2>&1 &
load=$!
sleep 10
for role in transfer-in transfer-out; do
  pid=$(pgrep -f "release/$role" | head -1)
  perf record -F 299 --call-graph dwarf,16384 -p "$pid" -o "$out/$role.data" -- sleep "$seconds" \
    > /dev/null 2>&1 &
done
wait "$load" || true
wait
grep -E "throughput|cpu:" "$out/load.txt"
for role in transfer-in transfer-out; do
  echo "== $role"
  python3 crates/load/bench/perf_split.py "$out/$role.data"
done
