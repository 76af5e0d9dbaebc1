"""Database-enforced tenant isolation: a tenant transaction runs as the tenant's own role, so
PostgreSQL itself refuses any statement that reaches another tenant's schema, whatever the
application code does with names or search paths."""

from __future__ import annotations

import uuid

import psycopg.errors
import pytest
from sqlalchemy import insert, text
from sqlalchemy.exc import DBAPIError

from backend.core.db import create_db_engine, set_tenant_search_path, tenant_scope
from backend.core.tenancy import schema_identifier
from backend.infrastructure.sql.clients import clients
from backend.infrastructure.sql.privileges import drop_tenant_role, grant_tenant, tenant_group_role
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.unit_of_work import SqlTenantUnitOfWork
from tests.integration.defense.sqlcheck import column, refused, scalar
from tests.owner import owner_engine


def add_clients(runtime, tenant, *names: str) -> None:
    with tenant_scope(runtime.engine, tenant.schema_name) as connection:
        for name in names:
            connection.execute(insert(clients).values(id=uuid.uuid4(), name=name))


@pytest.fixture(scope="module")
def alpha(module_tenants, runtime):
    tenant = module_tenants("alpha")
    add_clients(runtime, tenant, "Alpha One")
    return tenant


@pytest.fixture(scope="module")
def beta(module_tenants, runtime):
    tenant = module_tenants("beta")
    add_clients(runtime, tenant, "Beta One", "Beta Two")
    return tenant


def role_exists(connection, name: str) -> bool:
    return bool(scalar(connection, "SELECT count(*) FROM pg_roles WHERE rolname = :name", name=name))


@pytest.fixture()
def bare_schema(runtime, runtime_role):
    """A tenant schema (with its role) made by the schema manager alone, without a registry
    row, so that dropping it cannot disturb tests that walk the registry."""
    name = f"tenant_{uuid.uuid4().hex}"
    with owner_engine().begin() as connection:
        SqlSchemaManager(connection, runtime_role).create(name)
    yield name
    with owner_engine().begin() as connection:
        SqlSchemaManager(connection, runtime_role).drop(name)


def test_the_tenant_transaction_runs_as_the_tenant_role(runtime, alpha):
    with tenant_scope(runtime.engine, alpha.schema_name) as connection:
        assert scalar(connection, "SELECT current_user") == alpha.schema_name
        assert scalar(connection, "SELECT session_user") == runtime.runtime_role
        assert column(connection, "SELECT name FROM clients") == ["Alpha One"]


def test_naming_another_tenants_schema_is_refused_by_the_database(runtime, alpha, beta):
    other = beta.schema_name
    with tenant_scope(runtime.engine, alpha.schema_name) as connection:
        refused(connection, f'SELECT name FROM "{other}".clients')
        refused(connection, f"INSERT INTO \"{other}\".clients (id, name) VALUES (gen_random_uuid(), 'x')")
        refused(connection, f"UPDATE \"{other}\".clients SET name = 'stolen'")
        refused(connection, f'DELETE FROM "{other}".clients')
        refused(connection, f'SELECT count(*) FROM "{other}".alembic_version')
        # Pointing the search path at the other schema does not help either: PostgreSQL skips
        # a schema the role may not use, so the table is not even found.
        connection.execute(text("SELECT set_config('search_path', :path, true)"), {"path": f'"{other}"'})
        with pytest.raises(DBAPIError) as info:
            connection.execute(text("SELECT name FROM clients"))
        assert isinstance(info.value.orig, psycopg.errors.UndefinedTable)
    with SqlTenantUnitOfWork(runtime.engine, alpha.schema_name) as uow:
        refused(uow.connection, f'SELECT name FROM "{other}".clients')


def test_runtime_outside_a_tenant_scope_reads_no_tenant_schema(runtime, alpha, beta):
    with runtime.engine.connect() as connection:
        assert scalar(connection, "SELECT current_user") == runtime.runtime_role
        reachable = column(
            connection,
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%'"
            " AND (has_schema_privilege(current_user, oid, 'USAGE')"
            "      OR has_schema_privilege(current_user, oid, 'CREATE'))",
        )
        assert reachable == []
        for tenant in (alpha, beta):
            refused(connection, f'SELECT name FROM "{tenant.schema_name}".clients')
        connection.rollback()


def test_each_tenant_schema_is_usable_by_its_role_only(runtime, runtime_role, owner_role, alpha, beta):
    with runtime.engine.connect() as connection:
        for tenant in (alpha, beta):
            grantees = column(
                connection,
                "SELECT DISTINCT a.grantee::regrole::text FROM pg_namespace n, aclexplode(n.nspacl) a"
                " WHERE n.nspname = :schema ORDER BY 1",
                schema=tenant.schema_name,
            )
            assert sorted(grantees) == sorted([owner_role, tenant.schema_name])
        row = connection.execute(
            text(
                "SELECT r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls"
                " FROM pg_roles r WHERE r.rolname = :role"
            ),
            {"role": alpha.schema_name},
        ).one()
        # LOGIN on Citus only: the coordinator connects to the workers as the tenant role, and
        # pg_hba admits it from the coordinator only (docs/scale-out.md).
        assert tuple(row) == (runtime.settings.citus, False, False, False, False)
        # The runtime may assume the tenant role, never use its privileges without doing so:
        # the grant's own options on PostgreSQL 16+, the runtime's NOINHERIT on 15.
        assert scalar(connection, "SELECT pg_has_role(:m, :r, 'MEMBER')", m=runtime_role, r=alpha.schema_name)
        assert not scalar(
            connection, "SELECT pg_has_role(:m, :r, 'USAGE')", m=runtime_role, r=alpha.schema_name
        )
        if connection.dialect.server_version_info >= (16,):
            membership = connection.execute(
                text(
                    "SELECT admin_option, inherit_option, set_option FROM pg_auth_members"
                    " WHERE roleid = CAST(:role AS regrole) AND member = CAST(:member AS regrole)"
                ),
                {"role": alpha.schema_name, "member": runtime_role},
            ).one()
            assert tuple(membership) == (False, False, True)
        in_group = "SELECT pg_has_role(:role, :group, 'USAGE')"
        group = tenant_group_role(runtime_role)
        assert scalar(connection, in_group, role=alpha.schema_name, group=group) is True
        connection.rollback()


def test_role_is_reset_after_each_transaction_on_a_pool_of_one(runtime, settings, alpha, beta):
    """One pooled connection alternating tenants, committing and failing: after every
    transaction it is the runtime role again, with the default search path."""
    engine = create_db_engine(
        settings.database_url, settings.model_copy(update=dict(pool_size=1, pool_max_overflow=0)), pool_size=1
    )
    expected = {alpha.schema_name: ["Alpha One"], beta.schema_name: ["Beta One", "Beta Two"]}
    pids = set()
    try:
        for round_ in range(3):
            for tenant in (alpha, beta, alpha):
                if round_ == 1:  # a failing transaction must reset just the same
                    with pytest.raises(RuntimeError), tenant_scope(engine, tenant.schema_name) as c:
                        assert scalar(c, "SELECT current_user") == tenant.schema_name
                        raise RuntimeError("the request failed")
                else:
                    with tenant_scope(engine, tenant.schema_name) as c:
                        assert scalar(c, "SELECT current_user") == tenant.schema_name
                        names = column(c, "SELECT name FROM clients ORDER BY name")
                        assert names == expected[tenant.schema_name]
                with engine.connect() as c:
                    row = c.exec_driver_sql(
                        "SELECT current_user, current_setting('role'),"
                        " current_setting('search_path'), pg_backend_pid()"
                    ).one()
                    c.rollback()
                assert tuple(row[:3]) == (runtime.runtime_role, "none", "pg_catalog")
                pids.add(row[3])
    finally:
        engine.dispose()
    assert len(pids) == 1  # really one connection throughout


def test_the_owner_works_as_itself_in_a_tenant_scope(runtime, owner_role, alpha):
    """Migrations, provisioning and purge keep the owner's rights inside a tenant scope."""
    with tenant_scope(owner_engine(), alpha.schema_name) as connection:
        assert scalar(connection, "SELECT current_user") == owner_role
        connection.rollback()


def test_provisioning_creates_the_role_and_a_rollback_leaves_none(runtime, runtime_role):
    name = f"tenant_{uuid.uuid4().hex}"
    with owner_engine().connect() as connection:
        with connection.begin():
            SqlSchemaManager(connection, runtime_role).create(name)
            assert role_exists(connection, name)
            connection.rollback()
        assert not role_exists(connection, name)
        assert scalar(connection, "SELECT to_regnamespace(:name)", name=name) is None


def test_drop_removes_the_schema_and_its_role_idempotently(runtime, runtime_role):
    name = f"tenant_{uuid.uuid4().hex}"
    with owner_engine().begin() as connection:
        SqlSchemaManager(connection, runtime_role).create(name)
    with owner_engine().begin() as connection:
        manager = SqlSchemaManager(connection, runtime_role)
        manager.drop(name)
        assert not role_exists(connection, name)
        assert scalar(connection, "SELECT to_regnamespace(:name)", name=name) is None
        manager.drop(name)


def test_drop_tenant_role_works_before_the_schema_is_dropped(runtime, runtime_role, bare_schema):
    with owner_engine().begin() as connection:
        drop_tenant_role(connection, bare_schema)
        assert not role_exists(connection, bare_schema)
        drop_tenant_role(connection, bare_schema)  # idempotent
    # Without its role the schema is unreachable: the runtime fails closed.
    with runtime.engine.begin() as connection:
        with pytest.raises(DBAPIError, match="does not exist"):
            set_tenant_search_path(connection, bare_schema)


def test_grant_tenant_removes_direct_runtime_access_and_is_idempotent(runtime, runtime_role, bare_schema):
    schema = schema_identifier(bare_schema).as_string(None)
    with owner_engine().begin() as connection:
        # As granted before tenant roles existed.
        connection.exec_driver_sql(f"GRANT USAGE ON SCHEMA {schema} TO {runtime_role}")
        connection.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {runtime_role}")
        grant_tenant(connection, bare_schema, runtime_role)
        grant_tenant(connection, bare_schema, runtime_role)
        usage = "SELECT has_schema_privilege(:role, :schema, 'USAGE')"
        assert scalar(connection, usage, role=runtime_role, schema=bare_schema) is False
        assert scalar(connection, usage, role=bare_schema, schema=bare_schema) is True
        members = (
            "SELECT count(*) FROM pg_auth_members"
            " WHERE roleid = CAST(:role AS regrole) AND member = CAST(:member AS regrole)"
        )
        assert scalar(connection, members, role=bare_schema, member=runtime_role) == 1
    with tenant_scope(runtime.engine, bare_schema) as connection:
        assert scalar(connection, "SELECT count(*) FROM clients") == 0


def test_api_requests_run_as_the_callers_tenant_role(client, runtime, alpha, beta, monkeypatch):
    """End to end: the clients route lists the caller's tenant only, executed as its role."""
    from backend.core.db import TenantScope
    from backend.infrastructure.sql import clients as clients_sql
    from tests.conftest import worker_headers

    # The page is read in the scope's own message (core/db.read_in_tenant_scope): the role it
    # ran as rides on each row, just before the total.
    seen = []
    original = TenantScope.read

    def spy(self, statement):
        rows = original(self, statement)
        seen.append(rows[0][-2])
        return rows

    page = clients_sql._PAGE_SQL.replace("count(*) OVER ()", "current_user AS executed_as, count(*) OVER ()")
    monkeypatch.setattr(clients_sql, "_PAGE_SQL", page)
    monkeypatch.setattr(TenantScope, "read", spy)
    for tenant, names in ((alpha, ["Alpha One"]), (beta, ["Beta One", "Beta Two"])):
        response = client.get("/api/v1/clients", headers=worker_headers(runtime, tenant))
        assert response.status_code == 200, response.json
        assert sorted(item["name"] for item in response.json) == names
    assert seen == [alpha.schema_name, beta.schema_name]


def test_shared_grants_give_a_role_to_a_tenant_schema_made_before_tenant_roles(runtime, runtime_role):
    """Upgrading a database whose tenants predate tenant roles: `tenants migrate` (shared
    grants) creates the missing roles, even for tenants already at head."""
    from backend.infrastructure.sql.privileges import grant_shared

    name = f"tenant_{uuid.uuid4().hex}"
    with owner_engine().begin() as connection:
        SqlSchemaManager(connection, runtime_role).create(name)
        drop_tenant_role(connection, name)  # as if made by the previous release
    try:
        with owner_engine().begin() as connection:
            grant_shared(connection, runtime_role)
        with tenant_scope(runtime.engine, name) as connection:
            assert scalar(connection, "SELECT current_user") == name
            assert scalar(connection, "SELECT count(*) FROM clients") == 0
    finally:
        with owner_engine().begin() as connection:
            SqlSchemaManager(connection, runtime_role).drop(name)
