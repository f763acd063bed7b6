#!/bin/sh
# Standby of docker-compose-replicacion.yml: on first start clones the primary
# with pg_basebackup through its replication slot, then runs as a hot standby.
# The replicator's password comes from the environment into a passfile
# outside the data directory; no config file holds it.
set -eu
: "${STANDBY_NAME:?set STANDBY_NAME (standby-1, standby-2)}"
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"
PRIMARY_HOST="${PRIMARY_HOST:-primary}"
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export PGDATA

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown -R postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    exec gosu postgres "$0" "$@"
fi

passfile="$HOME/.pgpass"
umask 077
printf '*:*:*:replicator:%s\n' "$REPLICATION_PASSWORD" > "$passfile"
slot=$(printf '%s' "$STANDBY_NAME" | tr '-' '_')
conninfo="host=$PRIMARY_HOST port=5432 user=replicator passfile=$passfile application_name=$STANDBY_NAME"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_isready -q -h "$PRIMARY_HOST" -p 5432; do
        echo "waiting for $PRIMARY_HOST"; sleep 1
    done
    pg_basebackup -D "$PGDATA" -X stream -c fast -R -S "$slot" -d "$conninfo"
fi

exec postgres \
    -c config_file=/etc/postgresql/postgresql.conf \
    -c hba_file=/etc/postgresql/pg_hba.conf \
    -c cluster_name="$STANDBY_NAME" \
    -c primary_conninfo="$conninfo" \
    -c primary_slot_name="$slot"
