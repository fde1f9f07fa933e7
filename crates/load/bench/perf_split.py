#!/usr/bin/env python3
"""Splits a `perf record --call-graph dwarf` profile of a bureau service into the rows of the
profile table in BENCHMARKS.md: each sample goes to the first row whose pattern appears anywhere
in its stack; samples of the SQLite writer thread are split further.

usage: crates/load/bench/perf_split.py perf.data [more.data ...]
record one with: perf record -F 199 --call-graph dwarf,16384 -p PID -o perf.data -- sleep 4"""
import collections, subprocess, sys

ROWS = [
    ("SQLite writer thread (group commit)", ["yibao_store::sqlite::writer"]),
    ("SQLite reads (blocking pool)", ["ReadPool", "sqlite::reader"]),
    ("tracing", ["tracing_subscriber", "tracing_core", "tracing::"]),
    ("protobuf encode/decode", ["prost::encoding", "::encode_raw", "::merge_field", "::decode"]),
    ("serde_json", ["serde_json"]),
    ("bureau handlers and drivers", ["yibao_bureau", "yibao_domain"]),
    ("HTTP/2 + gRPC transport", ["h2::", "hyper::", "hyper_util", "tonic::", "tower::"]),
    ("tokio scheduler, wake-ups, futex", ["tokio::runtime", "futex", "schedule"]),
]
WRITER = [
    ("fsync (kernel)", ["fsync", "fdatasync", "ext4_sync", "unixSync"]),
    ("WAL frame writes", ["pwrite", "sqlite3WalFrames", "walWriteOneFrame"]),
    ("serde_json documents", ["serde_json"]),
    ("SQL statements (B-tree, VDBE)", ["sqlite3", "rusqlite"]),
    ("bureau logic in write jobs", ["yibao_bureau"]),
]

def stacks(path):
    text = subprocess.run(["perf", "script", "-i", path, "-F", "comm,ip,sym"],
                          capture_output=True, text=True).stdout
    stack = []
    for line in text.splitlines():
        if line.strip():
            stack.append(line.strip())
        elif stack:
            yield " ".join(stack)
            stack = []
    if stack:
        yield " ".join(stack)

def first(rows, stack, default):
    return next((name for name, patterns in rows if any(p in stack for p in patterns)), default)

for path in sys.argv[1:]:
    rows, writer, total = collections.Counter(), collections.Counter(), 0
    for stack in stacks(path):
        total += 1
        row = first(ROWS, stack, "other")
        rows[row] += 1
        if row == ROWS[0][0]:
            writer[first(WRITER, stack, "queue, wake-ups, other")] += 1
    print(f"{path}: {total} samples")
    for name, count in rows.most_common():
        print(f"  {100 * count / total:5.1f}%  {name}")
    in_writer = sum(writer.values()) or 1
    for name, count in writer.most_common():
        print(f"      {100 * count / in_writer:5.1f}% of the writer: {name}")
