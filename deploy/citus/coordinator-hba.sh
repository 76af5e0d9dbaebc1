#!/bin/sh
# Coordinator of docker-compose.citus.yml, at first initialisation (docker-entrypoint-initdb.d):
# the deployment's roles by password from anywhere they can reach it; the other nodes of the
# `cluster` network (Citus's own connections) by address; tenant roles never (they exist to be
# assumed by the runtime role, and log in only to the workers, from the coordinator).
# `+saas_app_tenant` also matches the runtime role (an indirect member): admitted by name first.
set -eu
hba="$PGDATA/pg_hba.conf"
{
  echo "host all postgres,saas_owner,saas_app ${CLUSTER_SUBNET} trust"
  echo "host all postgres,saas_owner,saas_app all scram-sha-256"
  echo "local all +saas_app_tenant reject"
  echo "host all +saas_app_tenant all reject"
  cat "$hba"
} > "$hba.new"
mv "$hba.new" "$hba"
