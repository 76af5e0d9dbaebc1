"""The application through PgBouncer in transaction mode, out of the box: no startup
parameter PgBouncer refuses, tenant isolation with more clients than server connections, and
the pool guard meaningful although consecutive transactions of one client may run on
different server connections (docs/operations.md, PgBouncer)."""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest
from sqlalchemy import insert, select

from backend import create_app
from backend.core.db import set_tenant_search_path
from backend.infrastructure.sql.clients import clients
from tests.conftest import close_app
from tests.integration.pgbouncer.conftest import SERVER_CONNECTIONS
from tests.owner import owner_engine

pytestmark = pytest.mark.slow
API = "/api/v1"
CLIENTS = 8  # application connections, against SERVER_CONNECTIONS server connections


def add_clients(runtime, tenant, names: list[str]) -> None:
    with owner_engine().begin() as connection:
        set_tenant_search_path(connection, tenant.schema_name)
        connection.execute(insert(clients), [{"id": uuid.uuid4(), "name": name} for name in names])


def server_connections(bouncer) -> int:
    """Server connections PgBouncer holds for the application's database (admin console)."""
    with psycopg.connect(bouncer.admin_url, autocommit=True) as conn:
        result = conn.pgconn.exec_(b"SHOW SERVERS")  # the console speaks simple queries only
        database_column = [result.fname(i) for i in range(result.nfields)].index(b"database")
        return sum(1 for row in range(result.ntuples) if result.get_value(row, database_column) == b"saas")


@pytest.fixture()
def bounced_app(settings, pgbouncer):
    app = create_app(
        settings.model_copy(
            update=dict(
                database_url=pgbouncer.runtime_url,
                migration_database_url=pgbouncer.owner_url,
                pool_size=CLIENTS,
                pool_max_overflow=0,
            )
        )
    )
    yield app
    close_app(app)


def names_in(runtime, tenant) -> list[str]:
    with owner_engine().begin() as connection:
        set_tenant_search_path(connection, tenant.schema_name)
        return list(connection.execute(select(clients.c.name)).scalars())


def test_isolation_holds_with_more_clients_than_server_connections(
    bounced_app, pgbouncer, runtime, make_tenant, worker_token
):
    tenants = [make_tenant() for _ in range(3)]
    for index, tenant in enumerate(tenants):
        add_clients(runtime, tenant, [f"Only-{index}", "Same Name"])
    headers = [worker_token(t) for t in tenants]
    http = bounced_app.test_client()
    foreign = []  # a client id of each tenant, to ask the others for
    for index in range(len(tenants)):
        listed = http.get(f"{API}/clients", headers=headers[index])
        assert listed.status_code == 200, listed.json
        foreign.append(next(c["id"] for c in listed.json if c["name"] == f"Only-{index}"))
    failures: list[str] = []
    writes = [0] * len(tenants)
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def worker(offset: int) -> None:
        client = bounced_app.test_client()
        start.wait()
        for step in range(15):
            index = (offset + step) % len(tenants)
            other = (index + 1) % len(tenants)
            listed = client.get(f"{API}/clients", headers=headers[index])
            # Every row a tenant sees is its own: seeded or written for it (names end in -index).
            strangers = [c["name"] for c in listed.json or [] if c["name"] != "Same Name"
                         and not c["name"].endswith(f"-{index}")]  # fmt: skip
            if listed.status_code != 200 or strangers:
                failures.append(f"tenant {index}: {listed.status_code} {strangers}")
            peek = client.get(f"{API}/clients/{foreign[other]}", headers=headers[index])
            if peek.status_code != 404:
                failures.append(f"tenant {index} reached tenant {other}'s client: {peek.status_code}")
            made = client.post(f"{API}/clients", json={"name": f"W{offset}-{index}"}, headers=headers[index])
            if made.status_code != 201:
                failures.append(f"tenant {index}: write {made.status_code} {made.json}")
            else:
                with lock:
                    writes[index] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures[:5]
    engine = bounced_app.extensions["saas"].engine
    assert engine.pool.checkedin() > SERVER_CONNECTIONS  # the app really held more connections
    assert server_connections(pgbouncer) <= SERVER_CONNECTIONS  # than PgBouncer had servers
    for index, tenant in enumerate(tenants):  # every write landed in its own tenant, and only there
        names = names_in(runtime, tenant)
        assert all(name == "Same Name" or name.endswith(f"-{index}") for name in names), names
        assert len(names) == 2 + writes[index]


def test_a_session_setting_leaked_by_another_pooler_client_is_refused(
    settings, pgbouncer, make_tenant, worker_token
):
    """One server connection (`saas_single`): another client of PgBouncer leaves a session-level
    search path on it. The application's next transaction runs on that server connection; its
    first statement sees the leak and refuses it (503, retried), and PgBouncer drops the server
    connection the application abandoned mid-transaction, so the retry is served cleanly."""
    tenant, victim = make_tenant(), make_tenant()
    app = create_app(
        settings.model_copy(update=dict(database_url=pgbouncer.single_url, pool_size=1, pool_max_overflow=0))
    )
    try:
        with psycopg.connect(pgbouncer.single_url, autocommit=True) as other_client:
            other_client.execute(f'SET search_path TO "{victim.schema_name}"')  # session level: leaks
        http = app.test_client()
        refused = http.get(f"{API}/clients", headers=worker_token(tenant))
        assert refused.status_code == 503 and refused.json["detail"] == "database_unavailable"
        again = http.get(f"{API}/clients", headers=worker_token(tenant))
        assert again.status_code == 200, again.json
    finally:
        close_app(app)
