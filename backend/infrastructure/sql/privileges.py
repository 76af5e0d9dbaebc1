"""Grants that let the API use what the owner role creates, and nothing more.

Roles (docs/security-database.md):
- owner: owns the database, every schema and table; runs migrations, provisioning and purge;
  CREATEROLE (and nothing else) so that it can manage the tenant roles below.
- runtime (the API's login): USAGE + DML on `shared`, INSERT-only on `shared.audit_events`,
  SELECT-only on `shared.spare_schemas` (it takes a spare only through the owner's
  `shared.claim_spare_schema`, the one function it may EXECUTE besides PUBLIC's), and nothing
  at all on tenant schemas. It is a member
  of every tenant role WITH SET TRUE, INHERIT FALSE: it can assume a tenant role, never use
  one's privileges by itself.
- one NOLOGIN role per tenant, named like its schema (`core.db.tenant_role_name`): USAGE + DML
  on its own schema only. A request transaction assumes it together with the search path
  (`core.db.set_tenant_search_path`), so a statement naming another tenant's schema fails.
- the tenant group `<runtime>_tenant` (NOLOGIN), granted to every tenant role: what a tenant
  transaction needs in `shared` (the runtime's own shared privileges: the audit trail, and the
  identity rows some tenant use cases touch).

Grants are re-applied after every migration, so a table added by a migration is usable
without a manual step. When API and owner are the same role (`runtime_role` None) nothing is
granted and no tenant role exists: a degraded set-up without database-enforced isolation.
"""

from __future__ import annotations

from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import Connection

from backend.core.db import DEFAULT_SEARCH_PATH, distributes_schemas, tenant_role_name
from backend.core.tenancy import schema_identifier, validate_schema_name

SHARED = sql.Identifier("shared")
AUDIT_TABLE = sql.SQL("shared.audit_events")
VERSION_TABLE = sql.SQL("shared.alembic_version")
# The pool of spare schemas is the owner's business: the API may read it (metrics), tenant
# transactions may not even do that.
SPARES_TABLE = sql.SQL("shared.spare_schemas")
# The job queue (shared migration 0006, backend/infrastructure/jobs.py).
JOBS = sql.Identifier("jobs")
JOBS_TABLE = sql.SQL("jobs.procrastinate_jobs")
# The one owner function the API may call: the claim of a spare workspace (shared migration
# 0008, a SECURITY DEFINER function; docs/security-database.md).
CLAIM_FUNCTION = sql.SQL("shared.claim_spare_schema(text)")
JOB_EVENTS_TABLE = sql.SQL("jobs.procrastinate_events")
# The sequences behind the two rows a defer writes: the job's id, and the id of the `deferred`
# (or `scheduled`) event that procrastinate's insert triggers add. Those trigger functions are
# not SECURITY DEFINER: they run as the role that inserts the job, so the API draws from both.
# The queue's other sequences (periodic defers, workers) are the worker's, which runs as the
# owner (shared migration 0011 revoked them from an install that had them).
ENQUEUE_SEQUENCES = sql.SQL("jobs.procrastinate_jobs_id_seq, jobs.procrastinate_events_id_seq")
MAX_IDENTIFIER_LENGTH = 63  # NAMEDATALEN - 1: PostgreSQL would silently truncate a longer name


def _exec(connection: Connection, *statements: sql.Composable) -> None:
    """Send the statements in one round trip (no parameters: simple query protocol)."""
    script = sql.SQL("; ").join(statements).as_string(None)
    # no_parameters: the driver must not read `%` in the text as a placeholder.
    connection.exec_driver_sql(script, execution_options={"no_parameters": True})


def tenant_group_role(runtime_role: str) -> str:
    """The NOLOGIN role every tenant role belongs to, named after the deployment's runtime."""
    name = f"{runtime_role}_tenant"
    if len(name.encode()) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(f"runtime role name too long for its tenant group: {runtime_role!r}")
    return name


def _existing_roles(connection: Connection, *names: str) -> set[str]:
    return set(_role_inheritance(connection, *names))


def _role_inheritance(connection: Connection, *names: str) -> dict[str, bool]:
    """Of the named roles, those that exist, with their INHERIT attribute."""
    rows = connection.execute(
        text("SELECT rolname, rolinherit FROM pg_catalog.pg_roles WHERE rolname = ANY(:names)"),
        {"names": list(names)},
    )
    return {row.rolname: row.rolinherit for row in rows}


def _create_role(
    name: str, *, in_role: str | None = None, member: str | None = None, login: bool = False
) -> sql.Composed:
    """`in_role`: a group the new role joins; `member`: a role made a member of the new one.
    Granted by the CREATE ROLE itself, one catalog update instead of two more statements.
    `login`: only on Citus, where the coordinator opens its worker connections as the role."""
    # NOLOGIN: nobody connects as it; the runtime role assumes it inside a transaction.
    statement = sql.SQL("CREATE ROLE {} {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS").format(
        sql.Identifier(name), sql.SQL("LOGIN" if login else "NOLOGIN")
    )
    if in_role is not None:
        statement += sql.SQL(" IN ROLE {}").format(sql.Identifier(in_role))
    if member is not None:
        statement += sql.SQL(" ROLE {}").format(sql.Identifier(member))
    return statement


def _dml_grants(schema: sql.Identifier, role: sql.Identifier) -> list[sql.Composed]:
    return [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(schema, role),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(schema, role),
    ]


def _revoke_all(schema: sql.Identifier, role: sql.Identifier) -> list[sql.Composed]:
    return [
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA {} FROM {}").format(schema, role),
        sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {} FROM {}").format(schema, role),
        sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(schema, role),
    ]


def set_default_search_path(connection: Connection) -> bool:
    """Make `search_path = pg_catalog` the database's default when the owner role owns the
    database (it does in every setup of ours): a database bootstrapped by a release that sent
    the search path as a startup parameter gets the setting at its next `tenants migrate`, so
    the application keeps connecting without that parameter. False when not the owner (the
    administrator sets it: scripts/db_bootstrap.py)."""
    name, owns = connection.execute(
        text(
            "SELECT datname, pg_catalog.pg_has_role(current_user, datdba, 'USAGE')"
            " FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()"
        )
    ).one()
    if owns:
        statement = sql.SQL("ALTER DATABASE {} SET search_path = {}").format(
            sql.Identifier(name), sql.Literal(DEFAULT_SEARCH_PATH)
        )
        _exec(connection, statement)
    return bool(owns)


def grant_shared(connection: Connection, runtime_role: str | None) -> None:
    """After a shared migration: the runtime role and the tenant group may use `shared`;
    a tenant schema still without its role (made before tenant roles existed) gets one."""
    if not runtime_role:
        return
    group = tenant_group_role(runtime_role)
    statements: list[sql.Composable] = []
    if not _existing_roles(connection, group):
        statements.append(_create_role(group))
    for name in (runtime_role, group):
        role = sql.Identifier(name)
        statements += _dml_grants(SHARED, role)
        # The audit trail is append-only for the API.
        statements.append(sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(AUDIT_TABLE, role))
        # The shared tree's version is the owner's to write; the readiness probe only reads it.
        statements.append(
            sql.SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(VERSION_TABLE, role)
        )
    runtime, tenants = sql.Identifier(runtime_role), sql.Identifier(group)
    statements += [
        sql.SQL("REVOKE INSERT, UPDATE, DELETE ON {} FROM {}").format(SPARES_TABLE, runtime),
        sql.SQL("REVOKE ALL ON {} FROM {}").format(SPARES_TABLE, tenants),
        # Signup claims a spare through the owner's function, and only through it.
        sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(CLAIM_FUNCTION, runtime),
        *_enqueue_grants(runtime),
    ]
    if distributes_schemas(connection):
        # On Citus the coordinator opens its worker connections as the tenant role: the
        # group may connect to the database (propagated to the workers); the coordinator's
        # own pg_hba refuses the group (docs/scale-out.md).
        statements.append(
            sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(connection.execute(text("SELECT current_database()")).scalar_one()), tenants
            )
        )
    _exec(connection, *statements)
    for schema_name in _schemas_without_role(connection):
        grant_tenant(connection, schema_name, runtime_role)


def _enqueue_grants(runtime: sql.Identifier) -> list[sql.Composed]:
    """The API may put jobs in the queue (procrastinate's defer: an INSERT whose trigger writes
    an event row) and count them; it never reads a job's arguments, nor takes or changes a job."""
    return [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(JOBS, runtime),
        sql.SQL("GRANT INSERT ON {}, {} TO {}").format(JOBS_TABLE, JOB_EVENTS_TABLE, runtime),
        # The defer function's INSERT ... RETURNING id reads the new job's id, nothing more.
        # /metrics counts jobs by queue, task and status and ages the oldest waiting one and
        # the longest running: columns without the jobs' arguments (they name people).
        # `queueing_lock` too: PostgreSQL names a unique index's conflicting key only to a role
        # that may read its columns, and procrastinate reads that key to tell "a job with this
        # queueing lock already waits" (AlreadyEnqueued) from any other failure.
        sql.SQL(
            "GRANT SELECT (id, queue_name, task_name, status, scheduled_at, queueing_lock) ON {} TO {}"
        ).format(JOBS_TABLE, runtime),
        sql.SQL("GRANT SELECT (job_id, type, at) ON {} TO {}").format(JOB_EVENTS_TABLE, runtime),
        # USAGE (nextval) on the two sequences by name, not ON ALL SEQUENCES IN SCHEMA.
        sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(ENQUEUE_SEQUENCES, runtime),
    ]


def _schemas_without_role(connection: Connection) -> list[str]:
    """Tenant schemas that have no tenant role: one catalog query, normally empty."""
    rows = connection.execute(
        text(
            "SELECT n.nspname FROM pg_catalog.pg_namespace n"
            " WHERE n.nspname ~ '^tenant_[0-9a-f]{32}$'"
            " AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.rolname = n.nspname)"
            " ORDER BY n.nspname"
        )
    )
    return [validate_schema_name(row.nspname) for row in rows]


def grant_tenant(connection: Connection, schema_name: str, runtime_role: str | None) -> None:
    """After creating or migrating a tenant schema: only its own tenant role may use it."""
    if not runtime_role:
        return
    schema = schema_identifier(schema_name)
    name = tenant_role_name(schema_name)
    role, runtime = sql.Identifier(name), sql.Identifier(runtime_role)
    group = tenant_group_role(runtime_role)
    existing = _role_inheritance(connection, name, runtime_role)
    runtime_inherits = existing.get(runtime_role)
    statements: list[sql.Composable] = []
    # On Citus the coordinator connects to the workers as the tenant role it runs as, so the
    # role must be allowed to log in; the workers' pg_hba admits it from the coordinator
    # only and the coordinator's refuses it (docs/scale-out.md).
    login = name not in existing and distributes_schemas(connection)
    if name not in existing and _folded_membership_is_safe(runtime_inherits):
        # A new role gets both memberships from its CREATE ROLE: each membership statement
        # makes PostgreSQL recompute role memberships, a cost that grows with the number of
        # tenant roles (TD-017), and one statement pays it once instead of three times.
        statements.append(_create_role(name, in_role=group, member=runtime_role, login=login))
    else:
        if name not in existing:
            statements.append(_create_role(name, in_role=group, login=login))
        else:
            statements.append(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), role))
        statements.append(_membership_grant(connection, role, runtime_role, runtime_inherits))
    statements += [
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role),
        # Direct access by the runtime role (granted before tenant roles existed) is removed.
        sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(schema, runtime),
        # The schema's relations, found through pg_depend's index: `... ON ALL TABLES IN
        # SCHEMA` would read the whole of pg_class, a cost that grows with the fleet (TD-016).
        sql.SQL(grant_new_relations_sql(schema_name, runtime_role)),
    ]
    _exec(connection, *statements)


def _folded_membership_is_safe(runtime_inherits: bool | None) -> bool:
    """Whether `CREATE ROLE ... ROLE <runtime>` gives the runtime's membership INHERIT FALSE,
    SET TRUE: that clause takes the membership's INHERIT option from the member's own
    attribute (PostgreSQL 16+; 15 has no per-membership option), so only a NOINHERIT runtime
    role, as the bootstrap and the production set-up make it, may have it folded. An
    inheriting one gets the explicit grant, which refuses it on 15 (`_membership_grant`)."""
    if runtime_inherits is None:
        raise RuntimeError("the runtime role does not exist")
    return not runtime_inherits


TENANT_ROLE_MISSING = "the tenant role does not exist"

# Instead of GRANT/REVOKE ... ON ALL TABLES IN SCHEMA, whose every statement reads all of
# pg_class once per kind of relation (server CPU per tenant: 4.5 ms with 100 tenants, 40-60 ms
# with 1,000), the relations of the schema are found through pg_depend's index (~1 ms whatever
# the fleet) and only those whose grants differ from what grant_tenant leaves are changed:
# after a migration step, only the step's new relations; for a new schema, all of them.
_GRANT_NEW_RELATIONS = """DO $grant$
DECLARE
  tenant_role oid := pg_catalog.to_regrole({quoted_role});
  runtime_role oid := pg_catalog.to_regrole({quoted_runtime});
  item record;
BEGIN
  IF tenant_role IS NULL THEN
    RAISE EXCEPTION USING MESSAGE = {missing};
  END IF;
  FOR item IN
    SELECT c.oid::pg_catalog.regclass AS relation, c.relkind = 'S' AS is_sequence,
      (SELECT count(DISTINCT a.privilege_type) FROM pg_catalog.aclexplode(c.relacl) AS a
        WHERE a.grantee = tenant_role AND a.privilege_type = ANY (
          CASE WHEN c.relkind = 'S' THEN ARRAY['USAGE', 'SELECT']
          ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'] END))
        < CASE WHEN c.relkind = 'S' THEN 2 ELSE 4 END AS grant_needed,
      EXISTS (SELECT FROM pg_catalog.aclexplode(c.relacl) AS a WHERE a.grantee = runtime_role)
        AS revoke_needed
    FROM pg_catalog.pg_depend AS d JOIN pg_catalog.pg_class AS c ON c.oid = d.objid
    WHERE d.refclassid = 'pg_catalog.pg_namespace'::pg_catalog.regclass
      AND d.refobjid = {quoted_schema}::pg_catalog.regnamespace AND d.refobjsubid = 0
      AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  LOOP
    IF item.grant_needed AND item.is_sequence THEN
      EXECUTE pg_catalog.format('GRANT USAGE, SELECT ON SEQUENCE %s TO %I', item.relation, {role});
    ELSIF item.grant_needed THEN
      EXECUTE pg_catalog.format(
        'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO %I', item.relation, {role});
    END IF;
    IF item.revoke_needed THEN
      EXECUTE pg_catalog.format('REVOKE ALL ON %s %s FROM %I',
        CASE WHEN item.is_sequence THEN 'SEQUENCE' ELSE 'TABLE' END, item.relation, {runtime});
    END IF;
  END LOOP;
END
$grant$;"""


def grant_new_relations_sql(schema_name: str, runtime_role: str | None) -> str:
    """As SQL text for the caller's own round trip: the grants of the schema's tables, views
    and sequences that differ from what a tenant schema must have (DML and sequence use to
    the tenant role, nothing directly to the runtime role). Fails with TENANT_ROLE_MISSING
    when the schema has no tenant role yet (grant_tenant makes one first)."""
    if not runtime_role:
        return ""
    role = tenant_role_name(schema_name)

    def quoted(name: str) -> sql.Literal:  # what to_regrole and regnamespace read
        return sql.Literal(sql.Identifier(name).as_string(None))

    return (
        sql.SQL(_GRANT_NEW_RELATIONS)
        .format(
            role=sql.Literal(role),
            runtime=sql.Literal(runtime_role),
            quoted_role=quoted(role),
            quoted_runtime=quoted(runtime_role),
            quoted_schema=quoted(schema_name),
            missing=sql.Literal(TENANT_ROLE_MISSING),
        )
        .as_string(None)
    )


def _membership_grant(
    connection: Connection, role: sql.Identifier, runtime_role: str, runtime_inherits: bool | None
) -> sql.Composed:
    """SET: the runtime may assume the tenant role; INHERIT FALSE: outside a tenant transaction
    it has none of its privileges. The per-grant options exist from PostgreSQL 16; on 15 the
    runtime role's own NOINHERIT attribute (set by the bootstrap, required in production:
    docs/security-database.md) gives the same guarantee, and is checked here
    (`runtime_inherits`: its rolinherit, read with the tenant role's lookup)."""
    runtime = sql.Identifier(runtime_role)
    if connection.dialect.server_version_info >= (16,):
        return sql.SQL("GRANT {} TO {} WITH INHERIT FALSE, SET TRUE").format(role, runtime)
    if runtime_inherits:
        raise RuntimeError("on PostgreSQL 15 the runtime role must be NOINHERIT (ALTER ROLE ... NOINHERIT)")
    return sql.SQL("GRANT {} TO {}").format(role, runtime)


def drop_tenant_role(connection: Connection, schema_name: str) -> None:
    """At purge: drop the tenant's role. Idempotent; works before or after the schema is dropped."""
    name = tenant_role_name(schema_name)
    if not _existing_roles(connection, name):
        return
    statements: list[sql.Composable] = []
    schema_exists = connection.execute(
        text("SELECT to_regnamespace(:schema) IS NOT NULL"), {"schema": schema_name}
    ).scalar_one()
    if schema_exists:
        # Privileges on objects are dependencies that DROP ROLE refuses to break.
        statements += _revoke_all(schema_identifier(schema_name), sql.Identifier(name))
    statements.append(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
    _exec(connection, *statements)


_ROLE_POWERS = text(
    "SELECT r.rolname, r.rolsuper, r.rolcreaterole,"
    " owned.count, owned.first FROM pg_catalog.pg_roles r,"
    " LATERAL (SELECT count(*) AS count, min(n.nspname) AS first FROM pg_catalog.pg_namespace n"
    "   WHERE n.nspowner = r.oid AND n.nspname !~ '^(pg_|information_schema$|public$)') AS owned"
    " WHERE r.rolname = current_user"
)


def api_role_refusal(connection: Connection) -> str | None:
    """Why the connected role must not serve the API in production, or None: a superuser, a
    CREATEROLE role or the owner of a schema would turn any SQL injection or code execution in
    the API into a way around the per-tenant roles (docs/architecture.md, "Database roles")."""
    row = connection.execute(_ROLE_POWERS).one()
    if row.rolsuper:
        return f"DATABASE_URL connects as {row.rolname}, a superuser"
    if row.rolcreaterole:
        return f"DATABASE_URL connects as {row.rolname}, which has CREATEROLE"
    if row.count:
        return f"DATABASE_URL connects as {row.rolname}, which owns {row.count} schema(s) ({row.first}, ...)"
    return None
