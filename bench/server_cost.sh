#!/usr/bin/env bash
# What one request costs the server, per kind of request, on PostgreSQL: requests/s, p50, p99,
# the server's CPU time per request and its peak RSS, for GET /health (no token),
# GET /api/v1/photos/{id} (a random own photo of a random user), GET /api/v1/photos?limit=20 and
# GET /api/v1/users/me, each driven by wrk at 16 connections (2 threads). Seeds 10 users x 20
# photos; release server with memory:// storage and no workers.
#   CPU per request = (utime + stime of the server process, from /proc/PID/stat, after the run
#   minus before it, in clock ticks / `getconf CLK_TCK`) / requests wrk completed in the run;
#   "kernel" is the stime share of it (system calls, TCP on both sockets, wake-ups).
#   Peak RSS = VmHWM from /proc/PID/status at the end of the run; it is reset (clear_refs 5)
#   after each kind's warm-up where the kernel allows it, so it is the peak of that kind's
#   measured runs (BENCH_RUNS > 1: so far), not of the logins before them.
# Every answer must be 2xx: non-2xx answers and socket errors are counted per kind and the
# script fails (after the table) if there are any.
# Usage: bash bench/server_cost.sh   (needs wrk, psql, curl, python3)
#   BENCH_SECONDS=10   length of each measured run (each kind is warmed up BENCH_WARMUP=2 s first)
#   BENCH_RUNS=1       measured runs per kind, each printed
#   SERVER_ENV="NAME=value ..."  extra server environment (space separated; overrides the
#                      defaults), e.g. SERVER_ENV="AISTORY_METRICS_ADDR=127.0.0.1:0", to compare two
#                      configurations with the same command
#   PERF=1             also profile one extra GET /photos/{id} run with `perf record -g -p PID`
#                      (PERF_KIND=page or me: a page of 20, or /users/me, instead)
#                      (PERF_CALL_GRAPH=dwarf for DWARF unwinding) and render a flame graph with
#                      inferno (installed with `cargo install inferno --locked` into INFERNO_ROOT,
#                      default ~/.cache/aistory-bench/inferno, if missing); the folder is printed
#   PERF_STAT=1        also, per kind, one extra run under `perf stat -p PID` printing the
#                      server's system calls, context switches and CPU migrations per request
#   AISTORY_BENCH_API=/path/to/api  measure another build of the server (no build; before/after)
#   BENCH_PORT=18084, AISTORY_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
started=$(date +%s)
admin=${AISTORY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
base=${admin%/*}
db=aistory_bench_cost_$$
port=${BENCH_PORT:-18084}
seconds=${BENCH_SECONDS:-10}
warmup=${BENCH_WARMUP:-2}
runs=${BENCH_RUNS:-1}
connections=16
users=10
per_user=20
target=${CARGO_TARGET_DIR:-target}
tick=$(getconf CLK_TCK)

for tool in wrk psql curl python3; do
  command -v $tool >/dev/null || { echo "missing $tool (apt-get install wrk postgresql-client)" >&2; exit 1; }
done
# SERVER_ENV: NAME=value words, checked before anything is built or created.
read -ra extra_env <<<"${SERVER_ENV:-}"
for pair in ${extra_env[@]+"${extra_env[@]}"}; do
  [[ $pair =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || { echo "SERVER_ENV: '$pair' is not NAME=value" >&2; exit 2; }
done
work=$(mktemp -d)

trap_cleanup

# PERF=1: settle what is possible before the build, so a missing tool is said up front.
perf_dir=
if [ "${PERF:-0}" = 1 ]; then
  if ! command -v perf >/dev/null; then
    echo "PERF=1: perf is not installed (apt-get install linux-perf); no profile"
  elif ! perf record -q -g -o "$work/probe.data" -- true >"$work/probe.log" 2>&1; then
    echo "PERF=1: perf record is not permitted here (kernel.perf_event_paranoid=$(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo ?)): $(head -n 1 "$work/probe.log"); no profile"
  else
    inferno_root=${INFERNO_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/aistory-bench/inferno}
    export PATH=$inferno_root/bin:$PATH
    if ! command -v inferno-flamegraph >/dev/null || ! command -v inferno-collapse-perf >/dev/null; then
      echo "PERF=1: installing inferno into $inferno_root (once)"
      CARGO_TARGET_DIR=$target/inferno cargo install -q inferno --locked --root "$inferno_root" ||
        echo "PERF=1: cargo install inferno failed; perf.data only, no flame graph"
    fi
    perf_dir=$(mktemp -d "${TMPDIR:-/tmp}/aistory-server-cost-perf.XXXXXX")
  fi
fi

build_start=$(date +%s)
api_binary=${AISTORY_BENCH_API:-}
if [ -z "$api_binary" ]; then
  cargo build --release -q -p api
  echo "release build: $(( $(date +%s) - build_start )) s"
  api_binary=$target/release/api
fi
if curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; then
  echo "port $port already answers: another server? (set BENCH_PORT)" >&2; exit 1
fi
psql "$admin" -qc "CREATE DATABASE $db"

# Defaults first, SERVER_ENV after them (start_bench_server applies extra_env last).
start_bench_server 30
[ "$(cat /proc/$server/comm)" = api ] || { echo "PID $server is not the server" >&2; exit 1; }
seed_and_log_in

cpu_ticks() { sed 's/^.*) //' "/proc/$server/stat" | awk '{print $12 + $13}'; }  # utime + stime
sys_ticks() { sed 's/^.*) //' "/proc/$server/stat" | awk '{print $13}'; }  # stime
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$server/status"; }
reset_hwm() { echo 5 >"/proc/$server/clear_refs" 2>/dev/null; }
run_wrk() { # mode seconds [command prefix...]: wrk's output on stdout
  local mode=$1 secs=$2; shift 2
  MODE=$mode TOKENS_FILE=$work/tokens PHOTOS_PER_USER=$per_user \
    "$@" wrk -t2 -c$connections -d"${secs}s" -s bench/server_cost.lua "http://127.0.0.1:$port"
}
value() { tr ' ' '\n' <<<"$1" | awk -F= -v key="$2" '$1 == key {print $2}'; }
label() {
  case $1 in
    health) echo "GET /health" ;;
    one) echo "GET /photos/{id}" ;;
    page) echo "GET /photos?limit=20" ;;
    me) echo "GET /users/me" ;;
  esac
}

hwm_note="peak RSS: VmHWM over the kind's measured runs (reset after its warm-up)"
reset_hwm || hwm_note="peak RSS: VmHWM since the server started (this kernel does not reset it)"
if [ -n "${AISTORY_BENCH_API:-}" ]; then
  echo "server: $api_binary (AISTORY_BENCH_API), SERVER_ENV='${SERVER_ENV:-}'"
else
  echo "server: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo ' + uncommitted changes'), SERVER_ENV='${SERVER_ENV:-}'"
fi
echo "wrk: $connections connections, 2 threads, ${seconds}s per run (after a ${warmup}s warm-up per kind); $(nproc) cores; CLK_TCK $tick"
echo "$hwm_note"
printf "%-22s %4s %9s %9s %8s %8s %9s %6s %6s %9s %7s\n" \
  request run requests "req/s" "p50 ms" "p99 ms" "CPU us/req" "kernel" "CPU %" "peak RSS" "non-2xx"
failures=()
measure() { # mode run-label [command prefix...]
  local mode=$1 run=$2; shift 2
  local before after out result requests duration non2xx errors
  before=$(cpu_ticks) sys_before=$(sys_ticks)
  out=$(run_wrk "$mode" "$seconds" "$@" 2>"$work/wrk.err") || { cat "$work/wrk.err" >&2; exit 1; }
  after=$(cpu_ticks) sys_after=$(sys_ticks)
  result=$(grep '^result ' <<<"$out") || { echo "no result from wrk:" >&2; echo "$out" >&2; exit 1; }
  requests=$(value "$result" requests)
  duration=$(value "$result" duration_us)
  non2xx=$(value "$result" non2xx)
  errors=$(( $(value "$result" connect) + $(value "$result" read) + $(value "$result" write) + $(value "$result" timeout) ))
  [ "$requests" -gt 0 ] || { echo "$(label "$mode"): wrk completed no request" >&2; exit 1; }
  last_requests=$requests
  python3 - "$(label "$mode")" "$run" "$requests" "$duration" "$(value "$result" p50_us)" \
    "$(value "$result" p99_us)" "$(( after - before ))" "$tick" "$(hwm_kib)" "$non2xx" \
    "$(( sys_after - sys_before ))" <<'PY'
import sys
name, run, requests, duration_us, p50, p99, ticks, tick, hwm, non2xx, sys_ticks = sys.argv[1:]
requests, duration_s, ticks, tick = int(requests), int(duration_us) / 1e6, int(ticks), int(tick)
cpu_s = ticks / tick
print(f"{name:<22} {run:>4} {requests:>9} {requests / duration_s:>9.0f} {int(p50) / 1000:>8.2f} "
      f"{int(p99) / 1000:>8.2f} {cpu_s * 1e6 / requests:>9.1f} "
      f"{int(sys_ticks) * 100 / max(ticks, 1):>5.0f}% {cpu_s * 100 / duration_s:>6.0f} "
      f"{int(hwm) / 1024:>5.1f} MiB {non2xx:>7}")
PY
  if [ "$non2xx" -ne 0 ] || [ "$errors" -ne 0 ]; then
    failures+=("$(label "$mode") run $run: statuses $(value "$result" statuses), socket errors: connect $(value "$result" connect), read $(value "$result" read), write $(value "$result" write), timeout $(value "$result" timeout)")
  fi
}

for mode in health one page me; do
  run_wrk "$mode" "$warmup" >/dev/null 2>&1
  reset_hwm || true
  for run in $(seq 1 "$runs"); do
    measure "$mode" "$run"
  done
  if [ "${PERF_STAT:-0}" = 1 ]; then
    # Per request: system calls, context switches and migrations of the server's threads
    # (kernel tracepoint and software counters: no hardware counters needed).
    measure "$mode" stat perf stat -x, -o "$work/stat.csv" \
      -e raw_syscalls:sys_enter,context-switches,cpu-migrations -p "$server" --
    awk -F, -v n="$last_requests" -v kind="$(label "$mode")" \
      '$1 ~ /^[0-9]+$/ {printf "%s %s per request: %.2f\n", kind, $3, $1 / n}' "$work/stat.csv"
  fi
  if [ "$mode" = "${PERF_KIND:-one}" ] && [ -n "$perf_dir" ]; then
    # A separate run under perf (its row shows perf's own overhead; the rows above have none).
    call_graph=-g
    [ -n "${PERF_CALL_GRAPH:-}" ] && call_graph="--call-graph=$PERF_CALL_GRAPH"
    measure "$mode" perf perf record -q "$call_graph" -p "$server" -o "$perf_dir/perf.data" --
  fi
done

if [ -n "$perf_dir" ]; then
  if [ -s "$perf_dir/perf.data" ] && command -v inferno-flamegraph >/dev/null && command -v inferno-collapse-perf >/dev/null; then
    perf script -i "$perf_dir/perf.data" 2>/dev/null | inferno-collapse-perf >"$perf_dir/stacks.folded"
    inferno-flamegraph --title "GET /api/v1/photos/{id}, $connections connections${SERVER_ENV:+, $SERVER_ENV}" \
      <"$perf_dir/stacks.folded" >"$perf_dir/flamegraph.svg"
    echo "profile: $perf_dir (perf.data, stacks.folded, flamegraph.svg)"
  else
    echo "profile: $perf_dir (perf.data only: no flame graph)"
  fi
fi
if [ ${#failures[@]} -gt 0 ]; then
  echo "FAILED: answers that were not 2xx, or socket errors:" >&2
  printf '  %s\n' "${failures[@]}" >&2
  exit 1
fi
