#!/usr/bin/env bash
# Event streams at rest and in a burst (issue 18): 1,000 streams on photos held in
# `processing`, idle for 30 s (server CPU, database transactions per second), then all
# completed in one transaction (commit-to-event latency p50/p99, peak RSS). PostgreSQL at
# AISTORY_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# Usage: bash bench/streams.sh [IDLE_SECONDS] [STREAMS]
#   AISTORY_BENCH_API=/path/to/api  measure another build of the server (before/after)
set -euo pipefail
cd "$(dirname "$0")/.."
# Each stream is a connection on both sides: well past the usual limit of 1,024 files.
ulimit -n 16384
cargo build --release -q -p api -p bench
"${CARGO_TARGET_DIR:-target}/release/streams" "$@"
