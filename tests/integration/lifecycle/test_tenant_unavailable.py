"""A request that would queue behind a tenant's schema change (a migration holding its
tables) gives up at the runtime role's lock_timeout with 503 `tenant_unavailable` and a
Retry-After; other tenants are served meanwhile."""

from __future__ import annotations

import pytest
from psycopg.errors import LockNotAvailable
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from backend.api.errors import from_database_error
from tests.integration.lifecycle.conftest import in_schema
from tests.owner import owner_engine


@pytest.fixture()
def short_lock_timeout(runtime):
    """The runtime role waits 5 s for a lock; the test makes its requests wait 200 ms."""

    def set_lock_timeout(connection):
        connection.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")

    event.listen(runtime.engine, "begin", set_lock_timeout)
    yield
    event.remove(runtime.engine, "begin", set_lock_timeout)


def test_a_request_blocked_by_a_migration_gets_503_tenant_unavailable(
    client, make_tenant, worker_token, runtime, short_lock_timeout
):
    migrating, other = make_tenant(), make_tenant()
    with owner_engine().connect() as migration:
        # What ALTER TABLE takes while a migration runs, until its transaction ends.
        in_schema(migration, "LOCK TABLE {schema}.clients IN ACCESS EXCLUSIVE MODE", migrating.schema_name)
        blocked = client.get("/api/v1/clients", headers=worker_token(migrating))
        served = client.get("/api/v1/clients", headers=worker_token(other))
        migration.rollback()
    assert blocked.status_code == 503
    assert blocked.json == {"detail": "tenant_unavailable"}
    assert int(blocked.headers["Retry-After"]) > 0
    assert served.status_code == 200
    assert client.get("/api/v1/clients", headers=worker_token(migrating)).status_code == 200


def test_lock_timeout_maps_to_tenant_unavailable_and_other_errors_do_not(app):
    with app.test_request_context():
        locked = from_database_error(OperationalError("SELECT 1", {}, LockNotAvailable("lock timeout")))
        down = from_database_error(OperationalError("SELECT 1", {}, Exception("connection refused")))
    assert (locked.status_code, locked.json["detail"]) == (503, "tenant_unavailable")
    assert (down.status_code, down.json["detail"]) == (503, "database_unavailable")
