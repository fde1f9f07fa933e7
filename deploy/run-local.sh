#!/usr/bin/env bash
# Builds and starts both bureaus locally with the embedded SQLite store under data/, the shipped
# region directory, the admin API and the test clock; seeds a demo population; Ctrl-C stops both.
# (Interim until the `yibao up` command lands: see the issue notes.)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins
export YIBAO_DIRECTORY=deploy/regions.toml YIBAO_ADMIN=true YIBAO_TEST_CLOCK=true
target/release/transfer-out & out=$!
target/release/transfer-in & in=$!
trap 'kill -TERM $out $in 2>/dev/null; wait' INT TERM EXIT
echo "transfer-out on http://127.0.0.1:50051 (pid $out), transfer-in on http://127.0.0.1:50052 (pid $in)"
wait
