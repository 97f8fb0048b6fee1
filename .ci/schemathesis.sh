#!/usr/bin/env bash
# Contract fuzzing (schemathesis, every check) against the real server on PostgreSQL and the S3
# store, so every documented operation is live. Bounded in examples (and by a time-out).
#
# Usage: .ci/schemathesis.sh TARGET_DIR   (holds debug/api and debug/migration)
# Needs: AISTORY_TEST_POSTGRES_URL (admin URL), AWS_ENDPOINT_URL and credentials of an
# s3s-fs whose root directory is AISTORY_TEST_S3_ROOT (as .ci/run sets up).
# AISTORY_FUZZ_SEED and AISTORY_FUZZ_MAX_EXAMPLES change the seed and the depth.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bin=${1:?usage: .ci/schemathesis.sh TARGET_DIR}/debug
admin=${AISTORY_TEST_POSTGRES_URL:?set AISTORY_TEST_POSTGRES_URL}
s3_root=${AISTORY_TEST_S3_ROOT:?set AISTORY_TEST_S3_ROOT}
: "${AWS_ENDPOINT_URL:?set AWS_ENDPOINT_URL}"
version=4.32.5
venv=${AISTORY_SCHEMATHESIS_VENV:-/var/tmp/aistory-schemathesis-$version}
max_examples=${AISTORY_FUZZ_MAX_EXAMPLES:-100}

if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  echo "installing schemathesis $version in $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv"; then
    echo "error: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check --retries 3 --timeout 30 \
    "schemathesis==$version"; then
    rm -rf "$venv"
    echo "error: could not install schemathesis $version from PyPI" >&2
    exit 1
  fi
fi

name="aistory_fuzz_$(date +%s)_$$"
database_url="${admin%/*}/$name"
bucket="fuzz-$(date +%s)-$$"
workdir=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  psql -q "$admin" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "${s3_root:?}/$bucket" "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql -q "$admin" -c "CREATE DATABASE $name" >/dev/null
AISTORY_DATABASE_URL=$database_url "$bin/migration" up >"$workdir/migration.log" 2>&1 ||
  { cat "$workdir/migration.log" >&2; exit 1; }
mkdir -p "$s3_root/$bucket"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Downloads are proxied (AISTORY_DOWNLOADS=proxy; an S3 store's default is a 302 to the bucket,
# which the document then describes, and tests/tests/e2e/downloads.rs covers): the fuzzer checks
# the bytes' answers themselves.
# Every request comes from 127.0.0.1: the per-address login throttle would lock out the
# fresh-account logins after the fuzzer's wrong passwords, so it is raised for this run.
AISTORY_ENVIRONMENT=testing AISTORY_DATABASE_URL=$database_url AISTORY_STORAGE_URL="s3://$bucket" AISTORY_DOWNLOADS=proxy \
  AISTORY_PORT=$port AISTORY_LOGIN_MAX_FAILURES=1000 AISTORY_LOGIN_MAX_FAILURES_PER_ADDRESS=100000 AISTORY_REGISTRATIONS_PER_HOUR=1000000 RUST_LOG=warn \
  "$bin/api" >"$workdir/server.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || { cat "$workdir/server.log" >&2; exit 1; }

# Run from the scratch directory: schemathesis keeps a cache of past failures in its working
# directory and replays it, which would make a run depend on more than its seed.
status=0
(cd "$workdir" && AISTORY_FUZZ_BASE_URL="http://127.0.0.1:$port" PYTHONPATH="$repo/.ci" \
  SCHEMATHESIS_HOOKS=schemathesis_hooks timeout 900 \
  "$venv/bin/schemathesis" --config-file "$repo/.ci/schemathesis.toml" \
  run "http://127.0.0.1:$port/api/openapi.json" \
  --checks all --max-examples "$max_examples" --seed "${AISTORY_FUZZ_SEED:-20261125}" \
  --request-timeout 30 --report ndjson --report-dir "$workdir/report" ${AISTORY_FUZZ_EXTRA:-}) ||
  status=$?

# Every operation on an id was exercised beyond its 404 (2xx at least once).
if [ "$status" -eq 0 ]; then
  curl -fsS "http://127.0.0.1:$port/api/openapi.json" >"$workdir/openapi.json"
  python3 .ci/schemathesis-coverage.py "$workdir/openapi.json" "$workdir"/report/*.ndjson ||
    status=$?
fi

if grep -q "panicked" "$workdir/server.log"; then
  echo "error: the server panicked during the run:" >&2
  grep -A5 "panicked" "$workdir/server.log" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "schemathesis failed (exit $status; 124 = over the 15-minute time-out); last server log lines:" >&2
  tail -n 40 "$workdir/server.log" >&2
fi
exit "$status"
