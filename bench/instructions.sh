#!/usr/bin/env bash
# What one request costs the server in instructions (user space), per kind of request, on
# PostgreSQL: the same requests as bench/server_cost.sh (GET /health, one photo, a page of 20,
# /users/me over 10 users x 20 photos), counted by valgrind's callgrind in the server process.
# Unlike CPU time, an instruction count does not depend on the machine, on what else runs on
# it, or on CPU frequency: it is the number to compare two builds by on a noisy or slow
# machine. It leaves out the kernel (system calls, TCP, wake-ups: server_cost.sh's "kernel"
# column) and cache misses.
#   instructions per request = callgrind's Ir total over the kind's measured requests (counters
#   zeroed after a warm-up of BENCH_WARMUP_REQUESTS) / requests wrk completed.
# Every answer must be 2xx (the script fails otherwise). The release server runs under
# valgrind about 50 times slower, so wrk uses 4 connections and a 10 s timeout.
# Usage: bash bench/instructions.sh   (needs valgrind, wrk, psql, curl, python3)
#   BENCH_SECONDS=20          length of each measured run
#   AISTORY_BENCH_API=/path/to/api  measure another build (no build; before/after)
#   BENCH_KINDS="health one page me"  which kinds
#   BENCH_ANNOTATE=page       also print the 40 costliest functions (inclusive) of that kind
#   BENCH_PORT=18085, AISTORY_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
started=$(date +%s)
admin=${AISTORY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
base=${admin%/*}
db=aistory_bench_instr_$$
port=${BENCH_PORT:-18085}
seconds=${BENCH_SECONDS:-20}
kinds=${BENCH_KINDS:-health one page me}
users=10
per_user=20
target=${CARGO_TARGET_DIR:-target}

for tool in valgrind callgrind_control wrk psql curl python3; do
  command -v $tool >/dev/null || { echo "missing $tool (apt-get install valgrind wrk postgresql-client)" >&2; exit 1; }
done
for kind in $kinds; do
  case $kind in health | one | page | me) ;; *) echo "unknown kind '$kind' (health one page me)" >&2; exit 2 ;; esac
done
work=$(mktemp -d)

trap_cleanup

api_binary=${AISTORY_BENCH_API:-}
if [ -z "$api_binary" ]; then
  cargo build --release -q -p api
  api_binary=$target/release/api
fi
if curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; then
  echo "port $port already answers: another server? (set BENCH_PORT)" >&2; exit 1
fi
psql "$admin" -qc "CREATE DATABASE $db"

# Seeding and logins (password hashing) on the server at full speed, then the measured one.
start_bench_server 30
seed_and_log_in
stop_server
echo "starting the server under callgrind"
start_bench_server 120 valgrind -q --tool=callgrind --dump-instr=no --collect-jumps=no \
  --callgrind-out-file="$work/callgrind.out.%p"

value() { tr ' ' '\n' <<<"$1" | awk -F= -v key="$2" '$1 == key {print $2}'; }
run_wrk() { # mode seconds: wrk's output on stdout
  MODE=$1 TOKENS_FILE=$work/tokens PHOTOS_PER_USER=$per_user \
    wrk -t1 -c4 -d"$2s" --timeout 10s -s bench/server_cost.lua "http://127.0.0.1:$port"
}
printf "%-22s %9s %16s %9s\n" request requests "instructions/req" non-2xx
failures=()
for kind in $kinds; do
  run_wrk "$kind" 3 >/dev/null 2>&1
  callgrind_control -z "$server" >/dev/null 2>&1
  out=$(run_wrk "$kind" "$seconds" 2>"$work/wrk.err") || { cat "$work/wrk.err" >&2; exit 1; }
  callgrind_control --dump="$kind" "$server" >/dev/null 2>&1
  result=$(grep '^result ' <<<"$out") || { echo "no result from wrk:" >&2; echo "$out" >&2; exit 1; }
  requests=$(value "$result" requests)
  non2xx=$(value "$result" non2xx)
  errors=$(( $(value "$result" connect) + $(value "$result" read) + $(value "$result" write) + $(value "$result" timeout) ))
  [ "$requests" -gt 0 ] || { echo "$kind: wrk completed no request" >&2; exit 1; }
  # The newest dump is this kind's: its "totals:" line is the instructions since the zeroing.
  dump=$(ls -t "$work"/callgrind.out.* | head -n 1)
  total=$(awk '/^(totals|summary):/ {print $2; exit}' "$dump")
  [ -n "$total" ] || { echo "$kind: no total in $dump" >&2; exit 1; }
  printf "%-22s %9d %16.0f %9d\n" "$kind" "$requests" "$(python3 -c "print($total / $requests)")" "$non2xx"
  if [ "$kind" = "${BENCH_ANNOTATE:-}" ]; then
    callgrind_annotate --inclusive=yes "$dump" 2>/dev/null | sed -n '1,60p' | cut -c1-200 >"$work/annotate.txt"
    cp "$dump" "${TMPDIR:-/tmp}/aistory-callgrind-$kind.out"
    echo "--- the costliest functions, inclusive (whole dump: ${TMPDIR:-/tmp}/aistory-callgrind-$kind.out)"
    cat "$work/annotate.txt"
  fi
  if [ "$non2xx" -ne 0 ] || [ "$errors" -ne 0 ]; then
    failures+=("$kind: statuses $(value "$result" statuses), socket errors: connect $(value "$result" connect), read $(value "$result" read), write $(value "$result" write), timeout $(value "$result" timeout)")
  fi
done
if [ ${#failures[@]} -gt 0 ]; then
  echo "FAILED: answers that were not 2xx, or socket errors:" >&2
  printf '  %s\n' "${failures[@]}" >&2
  exit 1
fi
