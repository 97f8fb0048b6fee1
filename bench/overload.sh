#!/usr/bin/env bash
# Overload (issue 8): far more concurrent writes than the pool has connections. Requests queue
# for a connection up to the acquire time-out, then get 503 with Retry-After; memory stays
# bounded; the server keeps serving. Release server on PostgreSQL with a pool of 1 (+0) and a
# 1 s acquire time-out; wrk drives PATCH /api/v1/photos/{id} (a committed write) at CONNS
# connections (default 1000) for BENCH_SECONDS (default 15).
# Usage: bash bench/overload.sh   (needs wrk, psql, curl, python3)
set -euo pipefail
cd "$(dirname "$0")/.."
admin=${AISTORY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
base=${admin%/*}
db=aistory_bench_overload_$$
port=${BENCH_PORT:-18083}
seconds=${BENCH_SECONDS:-15}
conns=${CONNS:-1000}
work=$(mktemp -d)
for tool in wrk psql curl python3; do
  command -v $tool >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
cargo build --release -q -p api
psql "$admin" -qc "CREATE DATABASE $db"
cleanup() {
  kill "${server:-}" "${sampler:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 65536 2>/dev/null || true
AISTORY_DATABASE_URL="$base/$db?sslmode=disable" AISTORY_PORT=$port AISTORY_STORAGE_URL=memory:// \
  AISTORY_SECRET_KEY=bench-secret-key-bench-secret-key-123456 AISTORY_WORKERS=0 \
  AISTORY_DB_POOL_SIZE=1 AISTORY_DB_MAX_OVERFLOW=0 AISTORY_DB_ACQUIRE_TIMEOUT_SECS=1 \
  AISTORY_REGISTRATIONS_PER_HOUR=1000000 RUST_LOG=error "${CARGO_TARGET_DIR:-target}/release/api" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.1; done
url=http://127.0.0.1:$port/api/v1
curl -fsS -XPOST "$url/auth/register" -H 'content-type: application/json' \
  -d '{"username":"loaded","email":"loaded@example.com","password":"correct horse battery"}' >/dev/null
token=$(curl -fsS -XPOST "$url/auth/login" -H 'content-type: application/json' \
  -d '{"username":"loaded","password":"correct horse battery"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
printf '\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\x08\0\0\0\0\x3a\x7e\x9b\x55\0\0\0\nIDATx\x9cc`\0\0\0\2\0\1H\xaf\xa4q\0\0\0\0IEND\xaeB`\x82' > "$work/dot.png"
photo=$(curl -fsS -XPOST "$url/photos" -H "Authorization: Bearer $token" -F "file=@$work/dot.png" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$server/status; }
start_rss=$(rss)
peak_file=$work/peak
( peak=0
  while kill -0 $server 2>/dev/null; do
    r=$(awk '/VmRSS/ {print $2}' /proc/$server/status 2>/dev/null || echo 0)
    [ "${r:-0}" -gt "$peak" ] && peak=$r && echo "$peak" > "$peak_file"
    sleep 0.05
  done ) &
sampler=$!

echo "overload: $conns connections, ${seconds}s, pool 1 + 0, acquire time-out 1 s"
PHOTO_ID=$photo TOKEN=$token wrk -t2 -c"$conns" -d"${seconds}s" --timeout 10s \
  -s bench/overload.lua "http://127.0.0.1:$port" | grep -E "Requests/sec|statuses|Retry-After|socket|latency p50"
# After the storm: the server is alive and answers at once.
after=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -XPATCH "$url/photos/$photo" \
  -H "Authorization: Bearer $token" -H 'content-type: application/json' -d '{"title":"after"}')
echo "after the load: PATCH answered $after (status, seconds)"
echo "server RSS: start ${start_rss} MiB, peak $(( $(cat "$peak_file") / 1024 )) MiB, end $(rss) MiB"
kill -0 $server && echo "server still running: yes"
