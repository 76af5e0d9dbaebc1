"""A migration that fails on one tenant: that tenant stays whole at its old revision, the
registry records the error, its users get 503 `tenant_unavailable` (with Retry-After) until a
run succeeds; the other tenants migrate and are served as usual."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from backend.core.tenancy import quoted_schema
from backend.infrastructure import migrations
from backend.infrastructure.sql.tenants import SqlTenantRepository, tenants
from tests.owner import owner_engine

pytestmark = pytest.mark.slow
API = "/api/v1"
OLD = "t0001"


def behind(runtime, tenant) -> None:
    """Put the tenant one revision back, schema and registry alike."""
    with owner_engine().begin() as connection:
        migrations.downgrade_tenant(connection, tenant.schema_name, OLD)
        SqlTenantRepository(connection).record_migration(tenant.id, OLD, None)


def migrate(app, slug: str):
    return app.test_cli_runner().invoke(args=["tenants", "migrate", "--slug", slug])


def listed(app, slug: str) -> dict:
    result = app.test_cli_runner().invoke(args=["tenants", "list", "--format", "json"])
    return next(row for row in json.loads(result.output) if row["slug"] == slug)


def test_one_tenant_fails_to_migrate_and_answers_503_while_the_others_serve(
    app, runtime, client, make_tenant, worker_token, client_token
):
    ok_a, broken, ok_b = make_tenant(), make_tenant(), make_tenant()
    workers = {t.id: worker_token(t) for t in (ok_a, broken, ok_b)}
    for tenant in (ok_a, broken, ok_b):
        client.post(f"{API}/clients", json={"name": f"Client of {tenant.slug}"}, headers=workers[tenant.id])
        behind(runtime, tenant)
    _, person = client_token(broken)
    # The revision creates `appointments`; a table of that name in the way makes it fail.
    with owner_engine().begin() as connection:
        connection.exec_driver_sql(f"CREATE TABLE {quoted_schema(broken.schema_name)}.appointments (x int)")

    results = {t.slug: migrate(app, t.slug) for t in (ok_a, broken, ok_b)}
    assert results[ok_a.slug].exit_code == 0 and results[ok_b.slug].exit_code == 0
    assert results[broken.slug].exit_code != 0
    assert "failed" in results[broken.slug].output.lower()

    row = listed(app, broken.slug)
    assert row["schema_version"] == OLD and "DuplicateTable" in row["last_migration_error"]
    with owner_engine().connect() as connection:
        assert migrations.tenant_revision(connection, broken.schema_name) == OLD  # rolled back whole
        connection.rollback()

    runtime.access_cache.forget()
    routes = [
        (workers[broken.id], path) for path in ("/clients", "/appointments", "/media", "/me", "/export")
    ]
    routes += [(person, path) for path in ("/appointments", "/media", "/me")]  # a client's routes
    for headers, path in routes:
        response = client.get(f"{API}{path}", headers=headers)
        assert response.status_code == 503, (path, response.json)
        assert response.json == {"detail": "tenant_unavailable"}
        assert int(response.headers["Retry-After"]) > 0
    for tenant in (ok_a, ok_b):
        assert listed(app, tenant.slug)["last_migration_error"] is None
        names = [c["name"] for c in client.get(f"{API}/clients", headers=workers[tenant.id]).json]
        assert names == [f"Client of {tenant.slug}"]
        assert client.get(f"{API}/appointments", headers=workers[tenant.id]).status_code == 200

    # The operator fixes the cause and runs it again: the tenant is back, its data intact.
    with owner_engine().begin() as connection:
        connection.exec_driver_sql(f"DROP TABLE {quoted_schema(broken.schema_name)}.appointments")
    assert migrate(app, broken.slug).exit_code == 0
    with owner_engine().connect() as connection:
        row = connection.execute(select(tenants).where(tenants.c.id == broken.id)).first()
    assert (row.schema_version, row.last_migration_error) == (migrations.head_revision("tenant"), None)
    runtime.access_cache.forget()
    names = [c["name"] for c in client.get(f"{API}/clients", headers=workers[broken.id]).json]
    assert names == ["A Client", f"Client of {broken.slug}"]  # the client user's record, and ours
    assert client.get(f"{API}/appointments", headers=person).status_code == 200
