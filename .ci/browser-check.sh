#!/usr/bin/env bash
# The web page (api/web, served by the API at /) walked through by a user in headless
# Chromium: sign up, upload a photo and a refused file, thumbnail, a story followed live,
# rename, delete, sign out and in again (tests/browser/journey.mjs, puppeteer-core pinned in
# tests/browser/package-lock.json, driving Debian's chromium). Any console error or warning,
# page error or unexpected failed request fails it. Screenshots gallery.png and story.png go to
# SCREENSHOT_DIR.
#
# Usage: .ci/browser-check.sh PATH_TO_API_BINARY [SCREENSHOT_DIR]   (default docs/screenshots)
# The server runs with its defaults except AISTORY_ENVIRONMENT=testing, from a scratch
# directory with its SQLite file and file store in it, so every run starts empty.
# Environment:
#   BROWSER_CHECK_NO_THUMBNAILS=1  development only, for a server without the thumbnail
#                                  endpoint: its 404s are expected and no thumbnail is waited for
#                                  (CI never sets it)
#   CHROMIUM_PATH                  the browser (default /usr/bin/chromium)
set -euo pipefail
api_binary=$(realpath "${1:?usage: .ci/browser-check.sh PATH_TO_API_BINARY [SCREENSHOT_DIR]}")
screenshots=${2:+$(realpath -m "$2")}
cd "$(dirname "$0")/.."
repo=$(pwd)
screenshots=${screenshots:-$repo/docs/screenshots}
browser_tests=$repo/tests/browser
started=$(date +%s)

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing chromium (Debian package) for the browser check"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# npm ci only when the lock file changed since the last install (it empties node_modules).
# puppeteer-core downloads no browser: it drives the chromium above.
lock_hash=$(sha256sum "$browser_tests/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$browser_tests/node_modules/.aistory-lock-sha256" 2>/dev/null || true)" != "$lock_hash" ]; then
  echo "installing puppeteer-core from tests/browser/package-lock.json"
  if ! (cd "$browser_tests" && npm ci --no-audit --no-fund --loglevel=error); then
    echo "error: npm ci in tests/browser failed" >&2
    exit 1
  fi
  echo "$lock_hash" >"$browser_tests/node_modules/.aistory-lock-sha256"
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
# From the scratch directory, so no .env of a working copy is read, and without a testing URL
# of the environment (it would win over AISTORY_DATABASE_URL). The testing default database is
# in memory and the default store is ./data/objects: both named explicitly, inside workdir.
(cd "$workdir" && exec env -u AISTORY_DATABASE_URL_TEST AISTORY_ENVIRONMENT=testing \
  AISTORY_DATABASE_URL="sqlite://$workdir/aistory.db?mode=rwc" AISTORY_STORAGE_URL="file://$workdir/objects" \
  AISTORY_PORT="$port" RUST_LOG=warn "$api_binary") >"$workdir/server.log" 2>&1 &
server=$!
for _ in $(seq 1 150); do
  curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || break
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/ready" >/dev/null || {
  echo "error: the API did not become ready:" >&2
  cat "$workdir/server.log" >&2
  exit 1
}

status=0
(cd "$browser_tests" && timeout 300 node journey.mjs "http://127.0.0.1:$port" "$screenshots") || status=$?
if [ "$status" -eq 124 ]; then echo "error: the browser journey took over 5 minutes" >&2; fi
if grep -q "panicked" "$workdir/server.log"; then
  echo "error: the server panicked during the run:" >&2
  grep -A5 "panicked" "$workdir/server.log" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "browser check failed; last server log lines:" >&2
  tail -n 40 "$workdir/server.log" >&2
  exit "$status"
fi
echo "browser check passed in $(($(date +%s) - started)) s (screenshots in $screenshots)"
