#!/usr/bin/env bash
# The read path against the database's own ceiling, on PostgreSQL.
# Seeds 100 users x 100 photos, logs them in, drives GET /api/v1/photos/{id} (random own ids,
# random users) and GET /api/v1/photos?limit=20 with wrk at 16 and 64 connections, measures
# `pgbench -S -M prepared` at the same connection counts, and prints requests/s, p50, p99,
# the server's peak RSS and the ratio server/pgbench.
# Usage: bash bench/read_path.sh   (BENCH_SECONDS=15 by default; needs wrk, pgbench, psql)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
admin=${AISTORY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
base=${admin%/*}
db=aistory_bench_read_$$
pgb=aistory_bench_pgbench_$$
port=${BENCH_PORT:-18082}
seconds=${BENCH_SECONDS:-15}
users=100
per_user=100
work=$(mktemp -d)

for tool in wrk pgbench psql curl python3; do
  command -v $tool >/dev/null || { echo "missing $tool (apt-get install wrk postgresql-client)" >&2; exit 1; }
done
cargo build --release -q -p api
psql "$admin" -qc "CREATE DATABASE $db"
psql "$admin" -qc "CREATE DATABASE $pgb"
cleanup() {
  kill "${server:-}" "${sampler:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $pgb WITH (FORCE)" || true
  rm -rf "$work"
}
trap cleanup EXIT

# Both the server and pgbench reach PostgreSQL the same way: DB_PARAMS (default: no TLS on
# loopback) is appended to both URLs.
params=${DB_PARAMS-?sslmode=disable}
AISTORY_DATABASE_URL="$base/$db$params" AISTORY_PORT=$port AISTORY_STORAGE_URL=memory:// \
  AISTORY_SECRET_KEY=bench-secret-key-bench-secret-key-123456 \
  AISTORY_DB_POOL_SIZE=${POOL_SIZE:-16} AISTORY_DB_MAX_OVERFLOW=${POOL_OVERFLOW:-16} \
  AISTORY_DB_READ_POOL_SIZE=${READ_POOL_SIZE:-8} \
  AISTORY_REGISTRATIONS_PER_HOUR=1000000 RUST_LOG=warn "${CARGO_TARGET_DIR:-target}/release/api" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.1; done

# Seed: users through the API (real password hashes), photos straight into the table.
url=http://127.0.0.1:$port/api/v1
echo "seeding $users users x $per_user photos"
for i in $(seq 1 $users); do
  curl -fsS -XPOST "$url/auth/register" -H 'content-type: application/json' \
    -d "{\"username\":\"reader$i\",\"email\":\"reader$i@example.com\",\"password\":\"correct horse battery\"}" >/dev/null
done
psql "$base/$db" -q <<SQL
INSERT INTO photos (user_id, object_key, status, title, content_type, size_bytes, width, height,
                    checksum_sha256, created_at, updated_at)
SELECT u.id, 'users/' || u.id || '/photos/' || g || '.jpg', 'uploaded', 'Photo ' || g, 'image/jpeg',
       123456, 4000, 3000, md5(u.id || '-' || g) || md5(g || '-' || u.id), now(), now()
FROM users u CROSS JOIN generate_series(1, $per_user) g
ORDER BY u.id, g;
ANALYZE;
SQL
# Tokens (and each user's first photo id) for the wrk script.
photo_tokens "$base/$db" "$url" > "$work/tokens"

pgbench -i -q -s 10 "$base/$pgb" >/dev/null 2>&1

peak_file=$work/peak
( peak=0
  while kill -0 $server 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss && echo "$peak" > "$peak_file"
    sleep 0.05
  done ) &
sampler=$!

run_wrk() { # mode connections
  MODE=$1 TOKENS_FILE=$work/tokens PHOTOS_PER_USER=$per_user \
    wrk -t2 -c"$2" -d"${seconds}s" --latency -s bench/read_path.lua "http://127.0.0.1:$port" 2>"$work/wrk.err"
}
run_pgbench() { # connections
  pgbench -S -M prepared -n -c "$1" -j 2 -T "$seconds" "$base/$pgb$params" 2>/dev/null | awk '/^tps/ {print $3}'
}
field() { awk -v key="$1" '$1 == key {print $2}'; }

printf "%-28s %5s %10s %9s %9s %10s %7s\n" endpoint conns "req/s" p50 p99 pgbench ratio
for connections in 16 64; do
  ceiling=$(run_pgbench "$connections")
  for mode in one page; do
    seconds_saved=$seconds; seconds=3; run_wrk $mode "$connections" >/dev/null; seconds=$seconds_saved  # warm-up
    if [ -n "${PERF_OUT:-}" ] && [ "$mode$connections" = one16 ]; then
      # Optional: where the CPU goes during this run (perf report -i $PERF_OUT --sort comm,dso).
      perf record -a -g -o "$PERF_OUT" -- sleep 4 >/dev/null 2>&1 &
    fi
    out=$(run_wrk $mode "$connections")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | field "50%")
    p99=$(echo "$out" | field "99%")
    errors=$(echo "$out" | awk '/Non-2xx/ {print $4}')
    if [ -s "$work/wrk.err" ] || [ -n "$errors" ]; then echo "warning: non-200 answers: ${errors:-see wrk.err}" >&2; fi
    ratio=$(python3 -c "print(f'{$rps / $ceiling:.0%}')")
    name=$([ $mode = one ] && echo "GET /photos/{id}" || echo "GET /photos?limit=20")
    printf "%-28s %5s %10s %9s %9s %10.0f %7s\n" "$name" "$connections" "$rps" "$p50" "$p99" "$ceiling" "$ratio"
  done
done
echo "server peak RSS: $(( $(cat "$peak_file") / 1024 )) MiB"
