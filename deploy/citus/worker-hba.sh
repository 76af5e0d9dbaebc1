#!/bin/sh
# A worker of docker-compose.citus.yml, at first initialisation (docker-entrypoint-initdb.d);
# the local cluster of the tests runs it too (backend/infrastructure/citus_cluster.py, with
# CLUSTER_SUBNET=127.0.0.1/32): every role from the nodes of the `cluster` network (the
# coordinator opens its connections as the tenant role of each transaction; shard moves connect
# worker to worker), nothing else but the superuser by password. The workers are on the
# `cluster` network only: the application cannot reach them (docs/scale-out.md, "Node-to-node
# authentication"). No rule for loopback: no Citus operation we run connects a worker to itself
# over TCP (moves and cleanups run from the coordinator); its socket keeps the image's rules.
set -eu
hba="$PGDATA/pg_hba.conf"
{
  echo "host all all ${CLUSTER_SUBNET} trust"
  echo "host all postgres all scram-sha-256"
  echo "host all all all reject"
  cat "$hba"
} > "$hba.new"
mv "$hba.new" "$hba"
