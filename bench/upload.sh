#!/usr/bin/env bash
# Uploads one 100 MiB photo (limit raised for the run) to the release server on SQLite with a
# local-directory store, and reports throughput and the server's peak RSS growth during the
# upload (sampled every 5 ms). Usage: bash bench/upload.sh [MIB]
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-100}
port=${BENCH_PORT:-18081}
work=$(mktemp -d)
cargo build --release -q -p api
AISTORY_DATABASE_URL="sqlite://$work/bench.db?mode=rwc" AISTORY_STORAGE_URL="file://$work/objects" \
  AISTORY_MAX_UPLOAD_BYTES=$(( (mib + 1) * 1024 * 1024 )) AISTORY_MAX_IMAGE_PIXELS=20000000 AISTORY_PORT=$port RUST_LOG=warn \
  "${CARGO_TARGET_DIR:-target}/release/api" 2>/dev/null &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$port/ready" >/dev/null 2>&1 && break; sleep 0.05; done

url=http://127.0.0.1:$port/api/v1
curl -fsS -XPOST "$url/auth/register" -H 'content-type: application/json' \
  -d '{"username":"bench","email":"bench@example.com","password":"correct horse battery"}' >/dev/null
token=$(curl -fsS -XPOST "$url/auth/login" -H 'content-type: application/json' \
  -d '{"username":"bench","password":"correct horse battery"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

# A PNG whose header is real (4000 x 3000, read by the upload's checks) and whose one IDAT chunk
# is random bytes: accepted, incompressible, never decoded by the upload path.
python3 - "$work/photo.png" "$mib" <<'PY'
import os, struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
mib = int(sys.argv[2])
with open(sys.argv[1], "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n")
    f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", 4000, 3000, 8, 2, 0, 0, 0)))
    f.write(struct.pack(">I", mib * 1024 * 1024) + b"IDAT")
    crc = zlib.crc32(b"IDAT")
    for _ in range(mib):
        block = os.urandom(1024 * 1024)
        crc = zlib.crc32(block, crc)
        f.write(block)
    f.write(struct.pack(">I", crc))
    f.write(chunk(b"IEND", b""))
PY
# Warm-up upload so allocator pools exist before the baseline.
head -c 2000000 "$work/photo.png" > "$work/warm.png"
curl -fsS -XPOST "$url/photos" -H "Authorization: Bearer $token" -F "file=@$work/warm.png" >/dev/null
sleep 0.5
baseline=$(awk '/VmRSS/ {print $2}' /proc/$server/status)

peak_file=$work/peak
( peak=$baseline
  while kill -0 $server 2>/dev/null && [ ! -e "$work/done" ]; do
    rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak" ] && peak=$rss
    echo "$peak" > "$peak_file"
    sleep 0.005
  done ) &
sampler=$!
start=$(date +%s%N)
status=$(curl -sS -o "$work/response.json" -w '%{http_code}' -XPOST "$url/photos" \
  -H "Authorization: Bearer $token" -F "file=@$work/photo.png;type=image/png")
end=$(date +%s%N)
touch "$work/done"; wait $sampler 2>/dev/null || true
peak=$(cat "$peak_file")
seconds=$(python3 -c "print(($end - $start) / 1e9)")
echo "upload of ${mib} MiB: HTTP $status in ${seconds}s = $(python3 -c "print(round($mib / (($end - $start) / 1e9), 1))") MiB/s"
echo "server RSS: baseline $((baseline / 1024)) MiB, peak during upload $((peak / 1024)) MiB, growth $(((peak - baseline) / 1024)) MiB"
# The thumbnail job (a worker in this process) then reads the stored photo whole to decode it:
# the process's peak after it, for the record (not the upload path's bound).
sleep 2
echo "server peak RSS (VmHWM) 2 s later, the thumbnail job included: $(( $(awk '/VmHWM/ {print $2}' /proc/$server/status) / 1024 )) MiB"
python3 -c "import json; d=json.load(open('$work/response.json')); print('stored:', d['size_bytes'], 'bytes, sha256', d['checksum_sha256'][:16] + '...')"
