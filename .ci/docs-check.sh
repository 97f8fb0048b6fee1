#!/usr/bin/env bash
# Loads /docs in headless Chromium and checks that Swagger UI rendered the operations from
# /api/openapi.json (not just the HTML shell). Usage: .ci/docs-check.sh PATH_TO_API_BINARY
set -euo pipefail
api_binary=$1
port=${DOCS_CHECK_PORT:-18765}

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package) for the /docs check"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

workdir=$(mktemp -d)
AISTORY_ENVIRONMENT=testing AISTORY_PORT=$port RUST_LOG=warn "$api_binary" >"$workdir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$workdir"' EXIT
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  sleep 0.1
done

dom=$(timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$workdir/profile" --virtual-time-budget=15000 \
  --dump-dom "http://127.0.0.1:$port/docs/" 2>/dev/null)

missing=0
for operation in /api/v1/auth/register /api/v1/auth/login /api/v1/users/me /health; do
  if ! grep -q "data-path=\"$operation\"" <<<"$dom"; then
    echo "error: /docs did not render the operation $operation" >&2
    missing=1
  fi
done
rendered=$(grep -o 'class="opblock opblock-' <<<"$dom" | wc -l)
if [ "$missing" -ne 0 ] || [ "$rendered" -lt 5 ]; then
  echo "error: /docs rendered $rendered operations" >&2
  exit 1
fi
echo "/docs check: Swagger UI rendered $rendered operations in headless Chromium"
