#!/bin/sh
# Coordinator of docker-compose.citus.yml, at first initialisation (docker-entrypoint-initdb.d);
# the local cluster of the tests runs it too (backend/infrastructure/citus_cluster.py, with
# CLUSTER_SUBNET=127.0.0.1/32). Tenant roles never log in here: they exist to be assumed by the
# runtime role, and log in only to the workers, from the coordinator. The deployment's roles:
# - from the node itself (its socket, loopback) as the image's own rules do: Citus connects to
#   `citus.local_hostname` (localhost) as the current user, e.g. before every shard move
#   (`tenants move`, `tenants rebalance`) to clean up orphaned shards;
# - from the other nodes of the `cluster` network (Citus's own connections) by address;
# - from anywhere else (the application's network) by password.
# `+saas_app_tenant` also matches the runtime role (an indirect member): admitted by name first.
set -eu
hba="$PGDATA/pg_hba.conf"
deployment_roles="postgres,saas_owner,saas_app"
{
  echo "local all ${deployment_roles} trust"
  echo "host all ${deployment_roles} 127.0.0.1/32 trust"
  echo "host all ${deployment_roles} ::1/128 trust"
  echo "host all ${deployment_roles} ${CLUSTER_SUBNET} trust"
  echo "host all ${deployment_roles} all scram-sha-256"
  echo "local all +saas_app_tenant reject"
  echo "host all +saas_app_tenant all reject"
  cat "$hba"
} > "$hba.new"
mv "$hba.new" "$hba"
