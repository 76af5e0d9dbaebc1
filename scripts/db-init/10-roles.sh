#!/usr/bin/env bash
# The two database roles and the database, as backend/infrastructure/embedded_postgres.py
# bootstrap() makes them for development, plus passwords:
#   owner   (MIGRATION_DATABASE_URL) owns the database and every schema: migrations, purge
#   runtime (DATABASE_URL)           the API: CONNECT + TEMPORARY, timeouts set on the role;
#                                    its grants on schemas come with every migration
# `public` gives CREATE to nobody (CVE-2018-1058) and the database nothing to PUBLIC.
#
# The postgres image runs this once, on an empty data volume (/docker-entrypoint-initdb.d).
# It is idempotent, and re-running it sets the passwords again: to prepare another server, run
# it as a superuser with the libpq variables, e.g.
#   PGHOST=db.internal PGUSER=postgres OWNER_DB_PASSWORD=... APP_DB_PASSWORD=... scripts/db-init/10-roles.sh
# Passwords are read from the environment inside psql (\getenv): never on a command line.
set -euo pipefail

: "${OWNER_DB_PASSWORD:?OWNER_DB_PASSWORD must be set}"
: "${APP_DB_PASSWORD:?APP_DB_PASSWORD must be set}"
export APP_DB_NAME="${APP_DB_NAME:-saas}"
export OWNER_DB_USER="${OWNER_DB_USER:-saas_owner}"
export APP_DB_USER="${APP_DB_USER:-saas_app}"

psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "${POSTGRES_USER:-${PGUSER:-postgres}}" --dbname "${POSTGRES_DB:-postgres}" <<'SQL'
\getenv owner OWNER_DB_USER
\getenv owner_password OWNER_DB_PASSWORD
\getenv app APP_DB_USER
\getenv app_password APP_DB_PASSWORD
\getenv dbname APP_DB_NAME

SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE', name)
  FROM (VALUES (:'owner'), (:'app')) AS wanted(name)
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) \gexec

ALTER ROLE :"owner" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'owner_password';
ALTER ROLE :"app" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'app_password';
ALTER ROLE :"app" SET statement_timeout = '15s';
ALTER ROLE :"app" SET lock_timeout = '5s';
ALTER ROLE :"app" SET idle_in_transaction_session_timeout = '60s';

SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L', :'dbname', :'owner', 'UTF8')
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :'dbname') \gexec

\connect :"dbname"
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON DATABASE :"dbname" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"dbname" TO :"app";
SQL

echo "database ${APP_DB_NAME}: owner role ${OWNER_DB_USER}, runtime role ${APP_DB_USER}"
