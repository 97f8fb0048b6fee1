# Shared by the bench scripts (source it).

# photo_tokens DB_URL API_URL: for every user, "FIRST_PHOTO_ID ACCESS_TOKEN" (password
# "correct horse battery"), for bench/tokens.lua.
photo_tokens() {
  psql "$1" -Atc "SELECT u.username || ' ' || min(p.id) FROM users u JOIN photos p ON p.user_id = u.id GROUP BY u.username ORDER BY u.username" |
  while read -r name first; do
    token=$(curl -fsS -XPOST "$2/auth/login" -H 'content-type: application/json' \
      -d "{\"username\":\"$name\",\"password\":\"correct horse battery\"}" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
    echo "$first $token"
  done
}

# seed_photos API_URL DB_URL USERS PER_USER PREFIX: USERS users PREFIX1..PREFIXn registered
# through the API (real password hashes, password "correct horse battery"), then PER_USER
# 'uploaded' photos each inserted straight into the table, each user's ids consecutive (what
# bench/tokens.lua's "first id + offset" relies on).
seed_photos() {
  local i
  for i in $(seq 1 "$3"); do
    curl -fsS -XPOST "$1/auth/register" -H 'content-type: application/json' \
      -d "{\"username\":\"$5$i\",\"email\":\"$5$i@example.com\",\"password\":\"correct horse battery\"}" >/dev/null
  done
  psql "$2" -q -v ON_ERROR_STOP=1 <<SQL
INSERT INTO photos (user_id, object_key, status, title, content_type, size_bytes, width, height,
                    checksum_sha256, created_at, updated_at)
SELECT u.id, 'users/' || u.id || '/photos/' || g || '.jpg', 'uploaded', 'Photo ' || g, 'image/jpeg',
       123456, 4000, 3000, md5(u.id || '-' || g) || md5(g || '-' || u.id), now(), now()
FROM users u CROSS JOIN generate_series(1, $4) g
ORDER BY u.id, g;
ANALYZE;
SQL
}

# stop_server: stops the server whose PID is in $server (if it runs) and forgets it.
stop_server() {
  if [ -n "${server:-}" ] && kill -0 "$server" 2>/dev/null; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  server=
}

# trap_cleanup: on exit, failure or Ctrl-C, stop $server (with the tail of $work/server.log if
# the script failed), drop the database $db (through $admin), remove $work and print the time
# since $started.
trap_cleanup() {
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
bench_cleanup() {
  local status=$?
  stop_server
  if [ "$status" -ne 0 ] && [ -s "$work/server.log" ]; then
    echo "--- last lines of the server's log:" >&2
    tail -n 20 "$work/server.log" >&2
  fi
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
  echo "total time: $(( $(date +%s) - started )) s"
}

# start_bench_server SECONDS [PREFIX...]: $api_binary on the database $base/$db, port $port,
# memory:// storage, no workers, a fixed secret key, then the NAME=value words of the array
# extra_env if set (env(1) applies them in order: they override the defaults), run under PREFIX
# (valgrind ...) if given; its output appended to $work/server.log, its PID in $server. Returns
# once /ready answers (the database too); exits if the server exits first or after SECONDS.
start_bench_server() {
  local seconds=$1 i
  shift
  env AISTORY_DATABASE_URL="$base/$db?sslmode=disable" AISTORY_PORT="$port" AISTORY_STORAGE_URL=memory:// \
    AISTORY_SECRET_KEY=bench-secret-key-bench-secret-key-123456 AISTORY_WORKERS=0 \
    AISTORY_REGISTRATIONS_PER_HOUR=1000000 RUST_LOG=warn ${extra_env[@]+"${extra_env[@]}"} \
    "$@" "$api_binary" >>"$work/server.log" 2>&1 &
  server=$!
  for i in $(seq 1 $((seconds * 10))); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/ready" 2>/dev/null && return 0
    kill -0 "$server" 2>/dev/null || { echo "the server exited before it was ready" >&2; exit 1; }
    sleep 0.1
  done
  echo "the server was not ready after $seconds s" >&2
  exit 1
}

# seed_and_log_in: $users users x $per_user photos through the server on $port (seed_photos),
# and their tokens in $work/tokens (photo_tokens).
seed_and_log_in() {
  local url=http://127.0.0.1:$port/api/v1
  echo "seeding $users users x $per_user photos"
  seed_photos "$url" "$base/$db" "$users" "$per_user" costly
  photo_tokens "$base/$db" "$url" >"$work/tokens"
  [ "$(wc -l <"$work/tokens")" -eq "$users" ] || { echo "expected $users logins" >&2; exit 1; }
}
