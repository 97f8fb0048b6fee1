#!/usr/bin/env bash
# A real streaming replica of the local PostgreSQL (127.0.0.1:5432) for the replica tests and
# the scale-out rehearsal: a second cluster made with `pg_basebackup -R`, on its own port.
#
#   bash .ci/replica.sh start    # make it (first time) and start it; prints its admin URL
#   bash .ci/replica.sh stop     # stop it (the tests stop and start it under load)
#   bash .ci/replica.sh delay MS # replay each commit MS milliseconds late (0: as soon as it can)
#   bash .ci/replica.sh destroy  # stop it and remove its data directory
#
# AISTORY_REPLICA_PORT (5433) and AISTORY_REPLICA_DIR (/var/tmp/aistory-replica) choose where.
# The primary must accept replication connections from 127.0.0.1: a `host replication`
# line is added to its pg_hba.conf (trust, loopback only) and the configuration reloaded,
# once. PostgreSQL will not run as root, so its commands run as the `postgres` user.
set -euo pipefail

action=${1:-}
port=${AISTORY_REPLICA_PORT:-5433}
dir=${AISTORY_REPLICA_DIR:-/var/tmp/aistory-replica}
primary="postgres://postgres@127.0.0.1:5432/postgres"
slot=aistory_replica_$port

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The primary's version when it answers; else (stopping while it is down) the newest installed.
major=$(psql "$primary" -Atc "SELECT current_setting('server_version_num')::int / 10000" 2>/dev/null || true)
bin=/usr/lib/postgresql/$major/bin
[ -n "$major" ] && [ -x "$bin/pg_ctl" ] || bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bin/pg_ctl" ] || bin=$(dirname "$(command -v pg_ctl)")

drop_slot() { # waits for the slot's sender to go, then drops it
  for _ in $(seq 1 50); do
    active=$(psql "$primary" -Atc "SELECT active FROM pg_replication_slots WHERE slot_name = '$slot'" 2>/dev/null || echo gone)
    case "$active" in
      "" | gone) return 0 ;;
      f) psql "$primary" -qAtc "SELECT pg_drop_replication_slot('$slot')" >/dev/null && return 0 ;;
    esac
    sleep 0.2
  done
  echo "error: the replication slot $slot is still in use; drop it with SELECT pg_drop_replication_slot('$slot')" >&2
  return 1
}

setting() { psql "$primary" -Atc "SHOW $1"; }
running() { [ -f "$dir/postmaster.pid" ] && as_postgres "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; }

case "$action" in
  start)
    if [ ! -f "$dir/standby.signal" ]; then
      hba=$(psql "$primary" -Atc "SHOW hba_file")
      rule='host replication all 127.0.0.1/32 trust'
      if [ "$(grep -Ev '^[[:space:]]*(#|$)' "$hba" | head -n 1 | tr -s ' \t' ' ')" != "$rule" ]; then
        # The first matching line wins: ours goes first (loopback only).
        echo "allowing replication connections from 127.0.0.1 in $hba"
        sed -i "1i # aistory .ci/replica.sh: a streaming replica on this machine\n$rule" "$hba"
        psql "$primary" -qAtc "SELECT pg_reload_conf()" >/dev/null
      fi
      # A copy left running (promoted, say) is stopped before its directory goes.
      if running; then as_postgres "$bin/pg_ctl" -D "$dir" -m immediate -w -t 60 stop >/dev/null; fi
      rm -rf "$dir"
      mkdir -p "$dir"
      chown postgres: "$dir" 2>/dev/null || true
      chmod 700 "$dir"
      # A replication slot keeps the WAL the replica has not received yet (the tests stop it
      # while the primary is busy); `destroy` drops it, so it cannot hold WAL forever.
      drop_slot
      echo "copying the primary (pg_basebackup -R) into $dir"
      as_postgres "$bin/pg_basebackup" -h 127.0.0.1 -p 5432 -U postgres -D "$dir" -R -X stream -c fast -C -S "$slot"
      # Debian keeps the configuration in /etc: the copy needs its own.
      as_postgres tee "$dir/postgresql.conf" >/dev/null <<EOF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
hot_standby = on
hot_standby_feedback = on
max_connections = $(setting max_connections)
max_worker_processes = $(setting max_worker_processes)
max_wal_senders = $(setting max_wal_senders)
max_prepared_transactions = $(setting max_prepared_transactions)
max_locks_per_transaction = $(setting max_locks_per_transaction)
shared_buffers = 128MB
logging_collector = off
include_if_exists = 'delay.conf'
EOF
      as_postgres tee "$dir/pg_hba.conf" >/dev/null <<'EOF'
local all all trust
host all all 127.0.0.1/32 trust
EOF
    fi
    if ! running; then
      if pg_isready -q -h 127.0.0.1 -p "$port"; then
        echo "error: port $port is taken by another server; set AISTORY_REPLICA_PORT" >&2
        exit 1
      fi
      as_postgres "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
    fi
    for _ in $(seq 1 150); do
      if [ "$(psql "postgres://postgres@127.0.0.1:$port/postgres" -Atc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ]; then
        echo "postgres://postgres@127.0.0.1:$port/postgres"
        exit 0
      fi
      sleep 0.2
    done
    echo "error: the replica on port $port did not come up as a standby; see $dir/server.log" >&2
    exit 1
    ;;
  delay)
    # Replay each commit no sooner than MS after it happened: a lagging replica, on demand.
    ms=${2:?usage: $0 delay MS}
    echo "recovery_min_apply_delay = '${ms}ms'" | as_postgres tee "$dir/delay.conf" >/dev/null
    as_postgres "$bin/pg_ctl" -D "$dir" reload >/dev/null
    # A reload is asynchronous: wait until the server says so.
    for _ in $(seq 1 50); do
      now=$(psql "postgres://postgres@127.0.0.1:$port/postgres" -Atc "SELECT setting FROM pg_settings WHERE name = 'recovery_min_apply_delay'" 2>/dev/null || true)
      [ "$now" = "$ms" ] && exit 0
      sleep 0.1
    done
    echo "error: the replica did not take recovery_min_apply_delay = ${ms}ms" >&2
    exit 1
    ;;
  stop)
    if running; then as_postgres "$bin/pg_ctl" -D "$dir" -m fast -w -t 60 stop >/dev/null; fi
    ;;
  destroy)
    if running; then as_postgres "$bin/pg_ctl" -D "$dir" -m immediate -w -t 60 stop >/dev/null; fi
    rm -rf "$dir"
    drop_slot
    ;;
  *)
    echo "usage: $0 start|stop|delay MS|destroy" >&2
    exit 2
    ;;
esac
