#!/usr/bin/env bash
# Rolling-upgrade rehearsal on PostgreSQL (issue 17): the previous release keeps serving reads
# and writes while the new release's migration is applied and a new server starts beside it,
# and a previous-release instance restarted after the migration still starts.
# "Previous release" = this commit. "New release" = this commit plus one migration written the
# way autogenerate writes an index on an existing table (CONCURRENTLY on PostgreSQL, outside a
# transaction), built from a worktree of HEAD into $CARGO_TARGET_DIR/rehearsal (the first
# build is a full release build). REHEARSAL_MIGRATION=newest instead rehearses this commit's own
# newest migration, with the previous release built without it (same build folder).
# Usage: bash bench/rehearsal.sh   (REHEARSAL_SECONDS=30 by default; needs wrk, psql, curl, git)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
admin=${AISTORY_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
base=${admin%/*}
db=aistory_rehearsal_$$
seconds=${REHEARSAL_SECONDS:-30}
old_port=${REHEARSAL_OLD_PORT:-18091}
new_port=${REHEARSAL_NEW_PORT:-18092}
restart_port=${REHEARSAL_RESTART_PORT:-18093}
users=20
per_user=${REHEARSAL_PHOTOS_PER_USER:-2500}
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d)
source_dir=${REHEARSAL_SOURCE:-/var/tmp/aistory-rehearsal-src}

for tool in wrk psql curl git python3; do
  command -v $tool >/dev/null || { echo "missing $tool (apt-get install wrk postgresql-client)" >&2; exit 1; }
done
cargo build --release -q -p api -p migration
rm -rf "$source_dir"
git worktree prune
git worktree add -q -f --detach "$source_dir" HEAD
if [ "${REHEARSAL_MIGRATION:-index}" = newest ]; then
  newest=$(grep -o 'm[0-9]\{8\}_[0-9]\{6\}_[a-z0-9_]*::Migration' migration/src/lib.rs | tail -1 | cut -d: -f1)
  echo "new release: $(git rev-parse --short HEAD); previous release: the same without $newest"
  sed -i -e "/Box::new(${newest}::Migration),/d" -e "/^mod ${newest};/d" "$source_dir/migration/src/lib.rs"
  (cd "$source_dir" && CARGO_TARGET_DIR="$target/rehearsal" cargo build --release -q -p api -p migration)
  old_api=$target/rehearsal/release/api
  old_migration=$target/rehearsal/release/migration
  new_api=$target/release/api
  new_migration=$target/release/migration
else
  newest=m20991231_000000_rehearsal_index
  echo "previous release: $(git rev-parse --short HEAD); new release: the same plus $newest"
  cat >"$source_dir/migration/src/$newest.rs" <<'RUST'
//! Rehearsal only (bench/rehearsal.sh): an index on an existing table, written as autogenerate
//! writes one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared(
                    "CREATE INDEX CONCURRENTLY \"idx-photos-status-id\" ON \"photos\" (\"status\", \"id\")",
                )
                .await?;
        } else {
            manager
                .create_index(
                    Index::create()
                        .name("idx-photos-status-id")
                        .table(Alias::new("photos"))
                        .col(Alias::new("status"))
                        .col(Alias::new("id"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx-photos-status-id")
                    .table(Alias::new("photos"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(false)
    }
}
RUST
  last=$(grep -o 'Box::new(m[0-9_a-z]*::Migration),' "$source_dir/migration/src/lib.rs" | tail -1)
  sed -i -e "s|$last|$last\n            Box::new($newest::Migration),|" -e "0,/^mod m/s//mod $newest;\nmod m/" "$source_dir/migration/src/lib.rs"
  (cd "$source_dir" && CARGO_TARGET_DIR="$target/rehearsal" cargo build --release -q -p api -p migration)
  old_api=$target/release/api
  old_migration=$target/release/migration
  new_api=$target/rehearsal/release/api
  new_migration=$target/rehearsal/release/migration
fi

psql "$admin" -qc "CREATE DATABASE $db"
cleanup() {
  kill "${old_server:-}" "${new_server:-}" "${restarted:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  git worktree remove -f "$source_dir" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
url="$base/$db?sslmode=disable"

serve() { # binary port log
  AISTORY_ENVIRONMENT=production AISTORY_DATABASE_URL="$url" AISTORY_PORT=$2 \
    AISTORY_STORAGE_URL=memory:// AISTORY_SECRET_KEY=rehearsal-secret-key-rehearsal-secret-key \
    AISTORY_WORKERS=0 AISTORY_REGISTRATIONS_PER_HOUR=1000000 RUST_LOG=warn "$1" >"$3" 2>&1 &
}
ready() { # port: wait until /ready answers 200
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$1/ready" >/dev/null 2>&1 && return 0; sleep 0.1; done
  return 1
}

# The previous release, migrated and serving.
DATABASE_URL="$url" "$old_migration" up >/dev/null 2>&1
serve "$old_api" "$old_port" "$work/old.log"; old_server=$!
ready "$old_port" || { echo "the previous release did not start:"; cat "$work/old.log"; exit 1; }

api=http://127.0.0.1:$old_port/api/v1
for i in $(seq 1 $users); do
  curl -fsS -XPOST "$api/auth/register" -H 'content-type: application/json' \
    -d "{\"username\":\"rehearsal$i\",\"email\":\"rehearsal$i@example.com\",\"password\":\"correct horse battery\"}" >/dev/null
done
psql "$url" -q <<SQL
INSERT INTO photos (user_id, object_key, status, title, content_type, size_bytes, checksum_sha256, created_at, updated_at)
SELECT u.id, 'users/' || u.id || '/photos/' || g || '.jpg', 'uploaded', 'Photo ' || g, 'image/jpeg',
       123456, md5(u.id || '-' || g) || md5(g || '-' || u.id), now(), now()
FROM users u CROSS JOIN generate_series(1, $per_user) g ORDER BY u.id, g;
SQL
photo_tokens "$url" "$api" > "$work/tokens"

load() { # port seconds output
  TOKENS_FILE=$work/tokens PHOTOS_PER_USER=$per_user \
    wrk -t1 -c8 -d"${2}s" --latency -s bench/rehearsal.lua "http://127.0.0.1:$1" >"$3" 2>"$3.err"
}
load "$old_port" "$seconds" "$work/old.wrk" & old_load=$!
sleep 3

# The new release's migration, while the previous release serves.
started=$(date +%s.%N)
if DATABASE_URL="$url" "$new_migration" up >"$work/migrate.log" 2>&1; then
  outcome="applied"
else
  outcome="FAILED (rolled back; the previous release went on serving)"
fi
migrated=$(python3 -c "print(f'{$(date +%s.%N) - $started:.2f}')")
new_load=
if [ "$outcome" = applied ]; then
  serve "$new_api" "$new_port" "$work/new.log"; new_server=$!
  ready "$new_port" || { echo "the new release did not start:"; cat "$work/new.log"; exit 1; }
  load "$new_port" $(( seconds - 6 )) "$work/new.wrk" & new_load=$!
fi

# A previous-release instance restarting after the migration (a rolling deploy's old
# instance, or the application rolled back) starts beside the newer schema.
serve "$old_api" "$restart_port" "$work/restarted.log"; restarted=$!
if ready "$restart_port"; then restart="started"; else restart="REFUSED: $(tail -3 "$work/restarted.log")"; fi
wait $old_load $new_load

report() { # name file
  local requests errors socket p99
  requests=$(awk '/requests in/ {print $1}' "$2")
  errors=$(awk '/Non-2xx/ {print $4}' "$2"); errors=${errors:-0}
  socket=$(awk '/Socket errors/ {print $0}' "$2")
  p99=$(awk '$1 == "99%" {print $2}' "$2")
  printf "%-34s %9s %12s %8s  %s\n" "$1" "$requests" "$errors" "$p99" "${socket:-no socket errors}"
}
echo "migration $newest, run while the previous release served: $outcome after ${migrated}s"
sed 's/^/  /' "$work/migrate.log" | cut -c1-400
printf "%-34s %9s %12s %8s\n" server requests "non-2xx" p99
report "previous release (whole run)" "$work/old.wrk"
if [ -n "$new_load" ]; then report "new release (after the migration)" "$work/new.wrk"; fi
echo "previous release restarted after the migration: $restart"
grep -h "does not know" "$work/restarted.log" | sed 's/^/  log: /' | head -1 || true
