#!/usr/bin/env bash
# Generated-client journey: the OpenAPI document must generate clients without a warning, and
# the generated Python client must carry a user through the whole API against the real server.
#
# 1. openapi-python-client (pinned) generates a Python package from GET /api/openapi.json;
#    any warning or error fails the run.
# 2. .ci/client_journey.py walks register -> photos -> story -> account deletion with it.
# 3. openapi-typescript (pinned, .ci/openapi-typescript/package-lock.json) generates TypeScript
#    types from the same document; any warning fails; tsc --noEmit type-checks them.
#
# Usage: .ci/client-journey.sh TARGET_DIR   (holds debug/api)
# The server runs on SQLite and a file store in a scratch directory, with its in-process
# worker and the built-in story writer, so nothing else needs to be running.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
bin=${1:?usage: .ci/client-journey.sh TARGET_DIR}/debug
version=0.29.1
dateutil_version=2.9.0.post0 # the generated models parse date-times with it
venv=${AISTORY_OPENAPI_CLIENT_VENV:-/var/tmp/aistory-openapi-python-client-$version}
ts=$repo/.ci/openapi-typescript
started=$(date +%s)

if ! "$venv/bin/openapi-python-client" --version 2>/dev/null | grep -qF "version: $version" ||
  ! "$venv/bin/python" -c 'import dateutil' >/dev/null 2>&1; then
  echo "installing openapi-python-client $version in $venv"
  rm -rf "$venv"
  if ! python3 -m venv "$venv"; then
    echo "error: python3 -m venv failed (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
  if ! "$venv/bin/pip" install --quiet --disable-pip-version-check --retries 3 --timeout 30 \
    "openapi-python-client==$version" "python-dateutil==$dateutil_version"; then
    rm -rf "$venv"
    echo "error: could not install openapi-python-client $version from PyPI" >&2
    exit 1
  fi
fi

# npm ci only when the lock file changed since the last install (it empties node_modules).
lock_hash=$(sha256sum "$ts/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$ts/node_modules/.aistory-lock-sha256" 2>/dev/null || true)" != "$lock_hash" ]; then
  echo "installing openapi-typescript from .ci/openapi-typescript/package-lock.json"
  if ! (cd "$ts" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "error: npm ci in .ci/openapi-typescript failed" >&2
    exit 1
  fi
  echo "$lock_hash" >"$ts/node_modules/.aistory-lock-sha256"
fi

workdir=$(mktemp -d)
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; fi
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# From the scratch directory, so no .env of a working copy is read (and without a testing URL
# of the environment, which would win over AISTORY_DATABASE_URL).
(cd "$workdir" && exec env -u AISTORY_DATABASE_URL_TEST AISTORY_ENVIRONMENT=testing \
  AISTORY_DATABASE_URL="sqlite://$workdir/a.db?mode=rwc" AISTORY_STORAGE_URL="file://$workdir/files" \
  AISTORY_PORT="$port" AISTORY_WORKERS=1 AISTORY_STORY_PROVIDER=builtin RUST_LOG=warn \
  "$bin/api") >"$workdir/server.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || { cat "$workdir/server.log" >&2; exit 1; }
curl -fsS -o "$workdir/openapi.json" "http://127.0.0.1:$port/api/openapi.json"

status=0

# 1. The Python client. openapi-python-client 0.29 reads only JSON, octet-stream and text/*
# response bodies; the download's image types are bytes like octet-stream (its documented
# content_type_overrides). The ruff post-hooks need the venv on PATH (else a warning).
cat >"$workdir/generator.yaml" <<'EOF'
content_type_overrides:
  image/jpeg: application/octet-stream
  image/png: application/octet-stream
  image/webp: application/octet-stream
  image/gif: application/octet-stream
  image/heic: application/octet-stream
EOF
generated=0
(cd "$workdir" && PATH="$venv/bin:$PATH" "$venv/bin/openapi-python-client" generate \
  --path openapi.json --meta none --config generator.yaml --fail-on-warning \
  --output-path "$workdir/client/aistory_client") >"$workdir/generate.log" 2>&1 || generated=$?
# Success prints one "Generating <path>" line; anything else is a warning or an error.
if [ "$generated" -ne 0 ] || grep -vqE '^Generating ' "$workdir/generate.log"; then
  echo "error: openapi-python-client $version did not generate a clean client (exit $generated):" >&2
  cat "$workdir/generate.log" >&2
  status=1
else
  echo "ok generate python client (openapi-python-client $version)"
fi
# After warnings the client is there all the same (without the pieces warned about): the
# journey still runs, to show what else breaks.
if [ -f "$workdir/client/aistory_client/__init__.py" ]; then
  (cd "$workdir" && PYTHONPATH="$workdir/client" AISTORY_JOURNEY_BASE_URL="http://127.0.0.1:$port" \
    timeout 300 "$venv/bin/python" "$repo/.ci/client_journey.py") || {
    echo "error: the client journey failed (exit $?; 124 = over the 5-minute time-out)" >&2
    status=1
  }
fi

# 2. TypeScript types, then a type-check of them and of a small module that uses them.
mkdir -p "$workdir/ts"
typescript=0
NO_COLOR=1 FORCE_COLOR=0 "$ts/node_modules/.bin/openapi-typescript" "$workdir/openapi.json" \
  -o "$workdir/ts/api.d.ts" >"$workdir/typescript.log" 2>&1 || typescript=$?
# Success prints its banner and one "openapi.json -> api.d.ts" line; anything else is a warning.
if [ "$typescript" -ne 0 ] || grep -vqE '^(✨ openapi-typescript [0-9.]+|🚀 .*openapi\.json → .*api\.d\.ts.*)?$' \
  "$workdir/typescript.log"; then
  echo "error: openapi-typescript failed or warned (exit $typescript):" >&2
  cat "$workdir/typescript.log" >&2
  status=1
else
  cat >"$workdir/ts/use.ts" <<'EOF'
import type { components, paths } from "./api";

type Photo = components["schemas"]["PhotoPublic"];
type Page = paths["/api/v1/photos"]["get"]["responses"][200]["content"]["application/json"];
const photo: Pick<Photo, "id" | "content_url"> = { id: 1, content_url: "/api/v1/photos/1/content" };
const ids: Array<Photo["id"]> = ([] as Page["items"]).map((item) => item.id);
export const used = [photo, ids];
EOF
  if (cd "$workdir/ts" && "$ts/node_modules/.bin/tsc" --noEmit --strict --target es2022 \
    --module esnext --moduleResolution bundler api.d.ts use.ts >"$workdir/tsc.log" 2>&1); then
    echo "ok generate typescript types (openapi-typescript $(node -p "require('$ts/package.json').devDependencies['openapi-typescript']"), tsc --noEmit)"
  else
    echo "error: tsc --noEmit refused the generated TypeScript types:" >&2
    cat "$workdir/tsc.log" >&2
    status=1
  fi
fi

if grep -q "panicked" "$workdir/server.log"; then
  echo "error: the server panicked during the run:" >&2
  grep -A5 "panicked" "$workdir/server.log" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "client journey failed; last server log lines:" >&2
  tail -n 40 "$workdir/server.log" >&2
else
  echo "client journey passed in $(($(date +%s) - started)) s"
fi
exit "$status"
