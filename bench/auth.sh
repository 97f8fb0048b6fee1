#!/usr/bin/env bash
# Authenticated GET /api/v1/users/me (requests/s, p50, p99) and login cost, on PostgreSQL.
# Usage: bash bench/auth.sh   (needs wrk and curl; PostgreSQL at AISTORY_TEST_POSTGRES_URL,
# default postgres://postgres@127.0.0.1:5432/postgres). Builds the release server first.
set -euo pipefail
cd "$(dirname "$0")/.."
admin=${AISTORY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
base=${admin%/*}
db=aistory_bench_auth_$$
port=${BENCH_PORT:-18080}
duration=${BENCH_SECONDS:-15}

command -v wrk >/dev/null || { echo "install wrk: apt-get install wrk" >&2; exit 1; }
cargo build --release -q -p api
psql "$admin" -qc "CREATE DATABASE $db"
cleanup() { kill "${server:-}" 2>/dev/null || true; wait 2>/dev/null || true; psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"; }
trap cleanup EXIT

AISTORY_ENVIRONMENT=development AISTORY_DATABASE_URL="$base/$db" AISTORY_PORT=$port \
  AISTORY_DB_POOL_SIZE=10 AISTORY_DB_MAX_OVERFLOW=10 RUST_LOG=warn "${CARGO_TARGET_DIR:-target}/release/api" &
server=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.1; done

url=http://127.0.0.1:$port/api/v1
curl -fsS -XPOST "$url/auth/register" -H 'content-type: application/json' \
  -d '{"username":"bench","email":"bench@example.com","password":"correct horse battery"}' >/dev/null
login() {
  curl -fsS -XPOST "$url/auth/login" -H 'content-type: application/json' \
    -d '{"username":"bench","password":"correct horse battery"}'
}
token=$(login | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

echo "== login (argon2id verify + refresh token insert), 20 sequential requests"
start=$(date +%s%N)
for _ in $(seq 1 20); do login >/dev/null; done
end=$(date +%s%N)
echo "login: $(( (end - start) / 20 / 1000000 )) ms per login on average"

for connections in 16 64; do
  echo "== GET /api/v1/users/me, $connections connections, ${duration}s"
  wrk -t2 -c"$connections" -d"${duration}s" --latency -H "Authorization: Bearer $token" "$url/users/me" \
    | grep -E "Requests/sec|Latency|50%|99%|Non-2xx|Socket errors"
done
echo "peak RSS of the server: $(grep VmHWM /proc/$server/status | awk '{print $2, $3}')"
