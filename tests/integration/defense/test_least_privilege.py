"""Least privilege, proved twice: from the catalogs (pg_roles, pg_namespace, has_*_privilege)
and by trying as the runtime role (the API's login) what it must not be able to do."""

from __future__ import annotations

import uuid

import pytest
from psycopg import sql as psql
from sqlalchemy import text

from backend.core.db import tenant_scope
from backend.infrastructure.sql.privileges import grant_tenant, tenant_group_role
from tests.integration.defense.sqlcheck import column, refused, scalar
from tests.owner import owner_engine

DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
NOT_GRANTED = ("TRUNCATE", "REFERENCES", "TRIGGER")


@pytest.fixture(scope="module")
def tenant(module_tenants):
    return module_tenants("privileges")


@pytest.fixture()
def as_runtime(runtime):
    with runtime.engine.connect() as connection:
        yield connection
        connection.rollback()


def test_runtime_role_attributes(as_runtime, runtime_role):
    row = as_runtime.exec_driver_sql(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin"
        " FROM pg_roles WHERE rolname = current_user"
    ).one()
    assert scalar(as_runtime, "SELECT current_user") == runtime_role
    assert tuple(row) == (False, False, False, False, False, True)


def test_owner_role_is_not_a_superuser_either(as_runtime, owner_role):
    row = as_runtime.exec_driver_sql(
        "SELECT rolsuper, rolcreatedb, rolreplication, rolbypassrls, rolcreaterole"
        f" FROM pg_roles WHERE rolname = '{owner_role}'"
    ).one()
    # CREATEROLE is what it needs to manage the per-tenant roles, and all it has.
    assert tuple(row) == (False, False, False, False, True)


def test_runtime_owns_nothing_and_not_the_database(as_runtime, owner_role):
    owned = scalar(
        as_runtime,
        "SELECT count(*) FROM pg_shdepend"
        " WHERE refclassid = 'pg_authid'::regclass AND refobjid = current_user::regrole"
        " AND deptype = 'o'",
    )
    assert owned == 0
    for catalog, owner_column in (
        ("pg_namespace", "nspowner"),
        ("pg_class", "relowner"),
        ("pg_proc", "proowner"),
        ("pg_type", "typowner"),
    ):
        count = f"SELECT count(*) FROM {catalog} WHERE {owner_column} = current_user::regrole"
        assert scalar(as_runtime, count) == 0, catalog
    database_owner = "SELECT datdba::regrole::text FROM pg_database WHERE datname = current_database()"
    assert scalar(as_runtime, database_owner) == owner_role


def _roles_that_must_not_create(runtime_role: str, tenant) -> list[str]:
    return [runtime_role, tenant_group_role(runtime_role), tenant.schema_name]


def test_no_create_anywhere_in_the_catalog(as_runtime, runtime_role, tenant):
    for role in _roles_that_must_not_create(runtime_role, tenant):
        database = "SELECT has_database_privilege(:role, current_database(), :privilege)"
        assert scalar(as_runtime, database, role=role, privilege="CREATE") is False, role
        assert scalar(as_runtime, database, role=role, privilege="TEMPORARY") is False, role
        creatable = column(
            as_runtime,
            "SELECT nspname FROM pg_namespace WHERE has_schema_privilege(:role, oid, 'CREATE')",
            role=role,
        )
        assert creatable == [], role


def test_no_create_anywhere_by_trying(as_runtime, tenant):
    refused(as_runtime, "CREATE SCHEMA intruder")
    refused(as_runtime, "CREATE TABLE public.intruder (id int)")
    refused(as_runtime, "CREATE TABLE shared.intruder (id int)")
    refused(as_runtime, f'CREATE TABLE "{tenant.schema_name}".intruder (id int)')
    refused(as_runtime, "CREATE TEMPORARY TABLE intruder (id int)")
    refused(as_runtime, "CREATE FUNCTION shared.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    refused(as_runtime, "CREATE ROLE intruder")
    refused(as_runtime, "ALTER TABLE shared.tenants ADD COLUMN intruder int")
    refused(as_runtime, "DROP TABLE shared.users")
    refused(as_runtime, "TRUNCATE shared.tenants")


def test_no_create_inside_a_tenant_scope(runtime, tenant):
    with tenant_scope(runtime.engine, tenant.schema_name) as connection:
        assert scalar(connection, "SELECT current_user") == tenant.schema_name
        refused(connection, "CREATE TABLE intruder (id int)")
        refused(connection, f'CREATE TABLE "{tenant.schema_name}".intruder (id int)')
        refused(connection, "CREATE TABLE shared.intruder (id int)")
        refused(connection, "CREATE TEMPORARY TABLE intruder (id int)")
        refused(connection, "ALTER TABLE clients ADD COLUMN intruder int")
        refused(connection, "DROP TABLE clients")
        connection.rollback()


def test_public_is_closed_and_searched_by_nobody(runtime, tenant):
    with runtime.engine.connect() as connection:
        for privilege in ("CREATE", "USAGE"):
            check = "SELECT has_schema_privilege(:role, 'public', :privilege)"
            assert scalar(connection, check, role="public", privilege=privilege) is False
            assert scalar(connection, check, role=runtime.runtime_role, privilege=privilege) is False
        grants_to_public = scalar(
            connection,
            "SELECT count(*) FROM pg_namespace n, aclexplode(n.nspacl) a"
            " WHERE n.nspname = 'public' AND a.grantee = 0",
        )
        assert grants_to_public == 0
        # Even looking a name up in public is refused (no USAGE), whether it exists or not.
        refused(connection, "SELECT * FROM public.anything")
        connection.rollback()
    for engine in (runtime.engine, owner_engine()):
        with engine.connect() as connection:
            assert scalar(connection, "SELECT current_setting('search_path')") == "pg_catalog"
            assert "public" not in scalar(connection, "SELECT current_schemas(true)")
            connection.rollback()
    with tenant_scope(runtime.engine, tenant.schema_name) as connection:
        assert scalar(connection, "SELECT current_schemas(true)") == ["pg_catalog", tenant.schema_name]


def test_shared_tables_are_dml_only(as_runtime, runtime_role):
    tables = column(as_runtime, "SELECT tablename FROM pg_tables WHERE schemaname = 'shared'")
    assert "tenants" in tables and "audit_events" in tables
    for role in (runtime_role, tenant_group_role(runtime_role)):
        for table in tables:
            granted = {
                privilege
                for privilege in DML + NOT_GRANTED
                if scalar(
                    as_runtime,
                    "SELECT has_table_privilege(:role, :table, :privilege)",
                    role=role,
                    table=f"shared.{table}",
                    privilege=privilege,
                )
            }
            expected = {"SELECT", "INSERT"} if table == "audit_events" else set(DML)
            if table == "alembic_version":
                expected = {"SELECT"}  # read by the readiness probe; only the owner writes it
            if table == "spare_schemas":  # the owner's pool; the API reads it for metrics
                expected = {"SELECT"} if role == runtime_role else set()
            assert granted == expected, (role, table)


def test_audit_rows_are_insert_only_for_the_runtime(as_runtime):
    as_runtime.exec_driver_sql("INSERT INTO shared.audit_events (event) VALUES ('defense.test')")
    refused(as_runtime, "UPDATE shared.audit_events SET event = 'forged' WHERE event = 'defense.test'")
    refused(as_runtime, "DELETE FROM shared.audit_events WHERE event = 'defense.test'")
    refused(as_runtime, "TRUNCATE shared.audit_events")


def test_audit_rows_are_insert_only_inside_a_tenant_transaction(runtime, tenant):
    from backend.infrastructure.sql.unit_of_work import SqlTenantUnitOfWork

    with SqlTenantUnitOfWork(runtime.engine, tenant.schema_name) as uow:
        assert scalar(uow.connection, "SELECT current_user") == tenant.schema_name
        uow.audit.record("defense.test", tenant_id=tenant.id)  # through the tenant group
        refused(uow.connection, "UPDATE shared.audit_events SET event = 'forged'")
        refused(uow.connection, "DELETE FROM shared.audit_events")


def test_runtime_timeouts_are_set_on_the_role(as_runtime, runtime_role, tenant, runtime):
    settings = scalar(
        as_runtime,
        "SELECT setconfig FROM pg_db_role_setting WHERE setrole = CAST(:role AS regrole) AND setdatabase = 0",
        role=runtime_role,
    )
    names = {entry.split("=", 1)[0] for entry in settings}
    timeouts = {"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"}
    assert timeouts <= names
    effective = "SELECT setting::bigint FROM pg_settings WHERE name = :name"
    for name in timeouts:
        assert scalar(as_runtime, effective, name=name) > 0, name
    # Assuming a tenant role keeps the login role's timeouts.
    with tenant_scope(runtime.engine, tenant.schema_name) as connection:
        for name in timeouts:
            assert scalar(connection, effective, name=name) > 0, name


def test_embedded_database_timeouts(database, as_runtime):
    if "superuser" not in database:
        pytest.skip("external database: values are the administrator's choice")
    shown = {
        name: scalar(as_runtime, f"SHOW {name}")
        for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")
    }
    assert shown == {
        "statement_timeout": "15s",
        "lock_timeout": "5s",
        "idle_in_transaction_session_timeout": "1min",
    }


ACL_OF_SCHEMA_RELATIONS = """
SELECT c.relname, c.relkind, r.rolname, a.privilege_type
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a
JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
  AND a.grantee <> c.relowner
"""


def relation_grants(connection, schema: str) -> dict[str, set[tuple[str, str]]]:
    from sqlalchemy import text

    grants: dict[str, set[tuple[str, str]]] = {}
    for row in connection.execute(text(ACL_OF_SCHEMA_RELATIONS), {"schema": schema}):
        grants.setdefault(row.relname, set()).add((row.rolname, row.privilege_type))
    return grants


def test_every_tenant_relation_grants_dml_to_its_role_only(runtime, tenant):
    """grant_tenant finds the relations through pg_depend, not ON ALL TABLES IN SCHEMA (whose
    pg_class scans grow with the fleet): every table, view and sequence must still be covered."""
    with owner_engine().connect() as connection:
        relations = scalar(
            connection,
            "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relkind IN ('r','p','v','m','f','S')",
            schema=tenant.schema_name,
        )
        grants = relation_grants(connection, tenant.schema_name)
    role = tenant.schema_name
    assert relations >= 4 and len(grants) == relations  # clients, appointments, media, alembic_version
    for name, granted in grants.items():
        expected = {(role, "USAGE"), (role, "SELECT")} if name.endswith("_seq") else {(role, p) for p in DML}
        assert granted == expected, name


def test_granting_again_removes_a_direct_runtime_grant(runtime, tenant, runtime_role):
    from psycopg import sql as psql

    from backend.infrastructure.sql.privileges import grant_tenant

    with owner_engine().begin() as connection:
        connection.exec_driver_sql(
            psql.SQL("GRANT SELECT ON {}.clients TO {}")
            .format(psql.Identifier(tenant.schema_name), psql.Identifier(runtime_role))
            .as_string(None)
        )
        assert (runtime_role, "SELECT") in relation_grants(connection, tenant.schema_name)["clients"]
        grant_tenant(connection, tenant.schema_name, runtime_role)
        assert relation_grants(connection, tenant.schema_name)["clients"] == {
            (tenant.schema_name, p) for p in DML
        }


# What a defer needs in `jobs` (docs/jobs.md): the job row, the event row procrastinate's insert
# triggers write as the inserting role, and the two sequences behind their ids. The columns the
# API may read (its defer's RETURNING id, /metrics) are column grants, outside relacl.
QUEUE_SEQUENCES_IN_USE = ("procrastinate_jobs_id_seq", "procrastinate_events_id_seq")
QUEUE_SEQUENCES_OF_THE_WORKER = ("procrastinate_periodic_defers_id_seq", "procrastinate_workers_id_seq")


def expected_queue_grants(runtime_role: str) -> dict[str, set[tuple[str, str]]]:
    return {
        "procrastinate_jobs": {(runtime_role, "INSERT")},
        "procrastinate_events": {(runtime_role, "INSERT")},
        **{name: {(runtime_role, "USAGE")} for name in QUEUE_SEQUENCES_IN_USE},
    }


def test_queue_grants_are_exactly_what_a_defer_needs(runtime_role):
    with owner_engine().connect() as connection:
        sequences = column(
            connection,
            "SELECT relname FROM pg_catalog.pg_class WHERE relkind = 'S'"
            " AND relnamespace = 'jobs'::regnamespace ORDER BY relname",
        )
        # Every sequence of the queue is accounted for: a new one is granted to nobody.
        assert set(sequences) == {*QUEUE_SEQUENCES_IN_USE, *QUEUE_SEQUENCES_OF_THE_WORKER}
        assert relation_grants(connection, "jobs") == expected_queue_grants(runtime_role)


def test_runtime_draws_only_from_the_sequences_of_a_defer(as_runtime):
    for name in QUEUE_SEQUENCES_IN_USE:
        assert scalar(as_runtime, f"SELECT nextval('jobs.{name}')") > 0, name
    for name in QUEUE_SEQUENCES_OF_THE_WORKER:
        refused(as_runtime, f"SELECT nextval('jobs.{name}')")
        refused(as_runtime, f"SELECT setval('jobs.{name}', 1)")


def test_queue_sequence_revision_revokes_what_older_releases_granted(runtime_role):
    """Releases before shared revision 0011 granted USAGE on every sequence of `jobs`: the
    revision takes the worker's sequences back from every role but the owner and leaves what a
    defer needs. In one transaction, rolled back (grants and DDL are transactional)."""
    from alembic import command

    from backend.infrastructure import migrations

    grant_all = psql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA jobs TO {}, PUBLIC").format(
        psql.Identifier(runtime_role)
    )
    with owner_engine().connect() as connection:
        transaction = connection.begin()
        try:
            command.downgrade(migrations.alembic_config("shared", connection), "0010_scheduled_work")
            connection.exec_driver_sql(grant_all.as_string(None))
            worker_sequence = relation_grants(connection, "jobs")[QUEUE_SEQUENCES_OF_THE_WORKER[0]]
            assert (runtime_role, "USAGE") in worker_sequence
            migrations.upgrade_shared(connection)
            grants = relation_grants(connection, "jobs")
            # PUBLIC (grantee 0) is not in pg_roles: counted separately.
            public = column(
                connection,
                "SELECT c.relname FROM pg_catalog.pg_class c"
                " CROSS JOIN LATERAL pg_catalog.aclexplode(c.relacl) a"
                " WHERE c.relnamespace = 'jobs'::regnamespace AND a.grantee = 0 ORDER BY c.relname",
            )
        finally:
            transaction.rollback()
    assert public == sorted(QUEUE_SEQUENCES_IN_USE)  # the revision keeps its hands off those two
    assert grants == expected_queue_grants(runtime_role)


MEMBERSHIPS_OF_ROLE = (
    "SELECT m.member::regrole::text AS member, m.roleid::regrole::text AS role,"
    " {options} FROM pg_catalog.pg_auth_members m"
    " WHERE m.roleid = CAST(:role AS regrole) OR m.member = CAST(:role AS regrole)"
)


@pytest.mark.parametrize("runtime_inherits", [False, True], ids=["noinherit-runtime", "inherit-runtime"])
def test_new_tenant_role_memberships_whatever_the_runtime_attribute(runtime, owner_role, runtime_inherits):
    """A new tenant role gets its memberships from its CREATE ROLE only when the runtime role is
    NOINHERIT (that clause takes the membership's INHERIT option from the member's attribute),
    otherwise from an explicit grant. Either way the runtime may assume the role (SET TRUE) and
    has none of its privileges (INHERIT FALSE), and the tenant role is in its group. Roles are
    transactional: everything here is rolled back."""
    tag = uuid.uuid4().hex
    runtime_name, schema = f"rt_{tag[:12]}", f"tenant_{tag}"
    group = tenant_group_role(runtime_name)
    setup = psql.SQL(
        "CREATE ROLE {runtime} NOLOGIN {inherit}; CREATE ROLE {group} NOLOGIN;"
        " CREATE SCHEMA {schema}; CREATE TABLE {schema}.things (id int)"
    ).format(
        runtime=psql.Identifier(runtime_name),
        inherit=psql.SQL("INHERIT" if runtime_inherits else "NOINHERIT"),
        group=psql.Identifier(group),
        schema=psql.Identifier(schema),
    )
    with owner_engine().connect() as connection:
        pg16 = connection.dialect.server_version_info >= (16,)
        connection.exec_driver_sql(setup.as_string(None))
        if runtime_inherits and not pg16:  # no per-membership INHERIT option on 15: refused
            with pytest.raises(RuntimeError, match="NOINHERIT"):
                grant_tenant(connection, schema, runtime_name)
            connection.rollback()
            return
        grant_tenant(connection, schema, runtime_name)
        # (admin, inherit, set); PostgreSQL 15's pg_auth_members has admin_option only.
        options = "m.admin_option, m.inherit_option, m.set_option" if pg16 else "m.admin_option"
        memberships = {
            (row.member, row.role): tuple(row)[2:]
            for row in connection.execute(text(MEMBERSHIPS_OF_ROLE.format(options=options)), {"role": schema})
            if row.member != owner_role  # PostgreSQL 16+ grants the creating role ADMIN
        }
        may_assume = scalar(connection, "SELECT pg_has_role(:m, :r, 'MEMBER')", m=runtime_name, r=schema)
        uses_privileges = scalar(connection, "SELECT pg_has_role(:m, :r, 'USAGE')", m=runtime_name, r=schema)
        in_group = scalar(connection, "SELECT pg_has_role(:m, :r, 'USAGE')", m=schema, r=group)
        connection.rollback()
    assert may_assume and not uses_privileges and in_group
    assert memberships == {
        (runtime_name, schema): (False, False, True) if pg16 else (False,),
        (schema, group): (False, True, True) if pg16 else (False,),
    }
