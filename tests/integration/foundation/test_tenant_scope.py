"""The search path is transaction-local: a pool of ONE connection alternating between two
tenants serves each only its own rows and always comes back with the default search path."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert, text

from backend import create_app
from backend.core.db import DEFAULT_SEARCH_PATH, create_db_engine, set_tenant_search_path
from backend.infrastructure.sql.clients import clients
from tests.conftest import close_app
from tests.owner import owner_engine


@pytest.fixture()
def one_connection_app(settings):
    application = create_app(settings.model_copy(update=dict(pool_size=1, pool_max_overflow=0)))
    yield application
    close_app(application)


def _add_clients(runtime, tenant, names):
    with owner_engine().begin() as connection:
        set_tenant_search_path(connection, tenant.schema_name)
        for name in names:
            connection.execute(insert(clients).values(id=uuid.uuid4(), name=name))


def _search_path(engine) -> str:
    with engine.connect() as connection:
        return connection.execute(text("SELECT current_setting('search_path')")).scalar_one()


def test_alternating_tenants_on_one_pooled_connection(one_connection_app, runtime, make_tenant, worker_token):
    a, b = make_tenant(), make_tenant()
    _add_clients(runtime, a, ["Ann", "Same Name"])
    _add_clients(runtime, b, ["Bob", "Same Name"])
    http = one_connection_app.test_client()
    engine = one_connection_app.extensions["saas"].engine
    expected = {a.id: {"Ann", "Same Name"}, b.id: {"Bob", "Same Name"}}
    backend_pids = set()
    for tenant in [a, b, a, b, b, a]:
        response = http.get("/api/v1/clients", headers=worker_token(tenant))
        assert response.status_code == 200, response.json
        assert {c["name"] for c in response.json} == expected[tenant.id]
        assert _search_path(engine) == DEFAULT_SEARCH_PATH
        with engine.connect() as connection:
            backend_pids.add(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
    assert engine.pool.size() == 1
    assert len(backend_pids) == 1, "every request ran on the same pooled connection"


def test_pool_guard_discards_a_connection_with_a_session_search_path(settings, runtime, make_tenant):
    tenant = make_tenant()
    engine = create_db_engine(
        settings.database_url, settings.model_copy(update=dict(pool_size=1, pool_max_overflow=0))
    )
    try:
        with engine.connect() as connection:
            dirty_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            # The peers' bug: a session-level SET that survives reset-on-return (a rollback).
            connection.execute(text(f'SET search_path TO "{tenant.schema_name}"'))
            connection.commit()
        with engine.connect() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
            path = connection.execute(text("SELECT current_setting('search_path')")).scalar_one()
        assert path == DEFAULT_SEARCH_PATH
        assert pid != dirty_pid, "the dirty connection was discarded, not reused"
    finally:
        engine.dispose()


def test_unqualified_names_fail_outside_a_tenant_scope(runtime, make_tenant):
    make_tenant()
    with runtime.engine.connect() as connection:
        with pytest.raises(Exception, match='relation "clients" does not exist'):
            connection.execute(text("SELECT count(*) FROM clients"))


def test_no_prepared_statements_across_schema_versions(runtime, make_tenant):
    """Two tenants whose `clients` differ (one is a migration ahead): the same SQL text run
    alternately many times on one connection must keep working (prepare_threshold=None)."""
    a, b = make_tenant(), make_tenant()
    with owner_engine().begin() as connection:
        connection.execute(text(f'ALTER TABLE "{b.schema_name}".clients ADD COLUMN extra integer'))
        connection.execute(text(f'GRANT SELECT ON "{b.schema_name}".clients TO {runtime.runtime_role}'))
    with runtime.engine.connect() as connection:
        for i in range(12):
            tenant = (a, b)[i % 2]
            with connection.begin():
                set_tenant_search_path(connection, tenant.schema_name)
                result = connection.execute(text("SELECT * FROM clients"))
                assert ("extra" in result.keys()) == (tenant is b)


def test_prepared_statements_would_break_across_schema_versions(settings, runtime, make_tenant):
    """Why prepare_threshold=None: with server-side prepared statements the same test fails."""
    import psycopg

    a, b = make_tenant(), make_tenant()
    with owner_engine().begin() as connection:
        connection.execute(text(f'ALTER TABLE "{b.schema_name}".clients ADD COLUMN extra integer'))
    url = owner_engine().url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, prepare_threshold=0) as conn:
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="cached plan must not change"):
            for tenant in (a, b):
                with conn.transaction():
                    conn.execute("SELECT set_config('search_path', %s, true)", (f'"{tenant.schema_name}"',))
                    conn.execute("SELECT * FROM clients").fetchall()
