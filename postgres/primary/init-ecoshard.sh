#!/bin/sh
# Creates what ecoshard needs on a new primary: the `replicator` role for
# streaming replication, the `ecoshard` role the bridge connects as (a
# superuser, for logical replication between clusters), the
# `ecomarket` database and one physical replication slot per standby.
# Run once by the official postgres image (docker-entrypoint-initdb.d) and by
# the local launcher; passwords come from the environment, never from a file.
set -eu
: "${REPLICATION_PASSWORD:?set REPLICATION_PASSWORD}"
: "${ECOSHARD_PASSWORD:?set ECOSHARD_PASSWORD}"

psql -X -q -v ON_ERROR_STOP=1 --username "${POSTGRES_USER:-postgres}" --dbname postgres \
    --set=replication_password="$REPLICATION_PASSWORD" \
    --set=ecoshard_password="$ECOSHARD_PASSWORD" <<'SQL'
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD :'replication_password';
-- SUPERUSER: moving a shard between clusters creates a publication FOR
-- TABLES IN SCHEMA and a subscription, which PostgreSQL 15 allows superusers
-- only (16 has pg_create_subscription).
CREATE ROLE ecoshard WITH LOGIN CREATEDB SUPERUSER PASSWORD :'ecoshard_password';
-- pg_stat_replication's lag columns are visible to pg_monitor members only.
GRANT pg_monitor TO ecoshard;
CREATE DATABASE ecomarket OWNER ecoshard;
SELECT pg_create_physical_replication_slot('standby_1');
SELECT pg_create_physical_replication_slot('standby_2');
SQL
