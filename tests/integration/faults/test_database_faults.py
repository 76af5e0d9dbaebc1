"""Bad days: PostgreSQL gone, backends killed, pool exhausted -> 503 with a stable code,
no stack trace, and the service recovers by itself."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select, text

from backend import create_app
from backend.cli.tenants import migrate_shared
from backend.infrastructure import embedded_postgres
from backend.infrastructure.sql.clients import SqlClientRepository
from backend.infrastructure.sql.identity import memberships
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service.tenants import provision_tenant
from tests import owner
from tests.conftest import close_app, unique_slug, verify_owner
from tests.owner import owner_engine
from tests.sessions import session_token

pytestmark = pytest.mark.slow


def _make_app(settings, **overrides):
    application = create_app(settings.model_copy(update=dict(**overrides)))
    return application


def test_pool_exhausted_fails_fast_with_503_and_recovers(settings, make_tenant, worker_token):
    tenant = make_tenant()
    application = _make_app(settings, pool_size=1, pool_max_overflow=0, pool_timeout_s=1)
    engine = application.extensions["saas"].engine
    http = application.test_client()
    try:
        held = engine.connect()  # a slow request holding the only connection
        started = time.monotonic()
        response = http.get("/api/v1/clients", headers=worker_token(tenant))
        assert time.monotonic() - started < 10, "fails fast instead of hanging"
        assert response.status_code == 503
        assert response.json == {"detail": "database_unavailable"}
        assert response.headers["Retry-After"].isdigit()
        held.close()
        assert http.get("/api/v1/clients", headers=worker_token(tenant)).status_code == 200
    finally:
        close_app(application)


def test_backend_killed_mid_request_is_503_then_recovers(
    database, settings, make_tenant, worker_token, monkeypatch
):
    if "superuser" not in database:
        pytest.skip("needs the embedded server's superuser to terminate backends")
    tenant = make_tenant()
    application = _make_app(settings, pool_size=2, pool_max_overflow=0)
    http = application.test_client()
    original = SqlClientRepository.list_page

    def slow_list_page(self, **kwargs):
        self._connection.execute(text("SELECT pg_sleep(5)"))
        return original(self, **kwargs)

    def kill_app_backends():
        time.sleep(0.5)
        with psycopg.connect(database["superuser"], dbname="saas", autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'SELECT pg_sleep(5)%%' AND pid <> pg_backend_pid()"
            )

    monkeypatch.setattr(SqlClientRepository, "list_page", slow_list_page)
    killer = threading.Thread(target=kill_app_backends)
    killer.start()
    response = http.get("/api/v1/clients", headers=worker_token(tenant))
    killer.join()
    assert response.status_code == 503
    assert response.json == {"detail": "database_unavailable"}
    monkeypatch.undo()
    assert http.get("/api/v1/clients", headers=worker_token(tenant)).status_code == 200
    close_app(application)


def test_postgresql_stopped_is_503_and_service_recovers_when_it_returns(settings):
    pgdata = Path(tempfile.mkdtemp(prefix="pgfault-")) / "pgdata"
    db = embedded_postgres.start(pgdata, cleanup="stop")
    application = _make_app(
        settings, database_url=db.runtime_url, migration_database_url=db.owner_url, pool_timeout_s=2
    )
    runtime = application.extensions["saas"]
    http = application.test_client()
    with owner.using(application):  # this test's own database: its owner engine for the helpers
        try:
            with application.app_context():
                migrate_shared()
            tenant = provision_tenant(
                slug=unique_slug(),
                name="Fault",
                owner_email="fault@example.com",
                trial_days=14,
                now=datetime.now(UTC),
                uow=SqlRegistryUnitOfWork(owner_engine(), runtime.runtime_role),
            )
            verify_owner(runtime, tenant)
            headers = {"Authorization": "Bearer " + _worker_token(runtime, tenant)}
            assert http.get("/api/v1/clients", headers=headers).status_code == 200

            db.server.cleanup()  # PostgreSQL stops
            runtime.access_cache.forget()
            for path in ("/health/ready", "/api/v1/clients"):
                down = http.get(path, headers=headers)
                assert down.status_code == 503, path
                assert down.json["detail"] == "database_unavailable"  # fail closed, never "all"
                assert b"Traceback" not in down.data

            again = embedded_postgres.start(pgdata, cleanup="stop")  # same data directory
            assert http.get("/health/ready").status_code == 200, "recovered without a restart"
            assert http.get("/api/v1/clients", headers=headers).status_code == 200
            again.server.cleanup()
        finally:
            close_app(application)
            shutil.rmtree(pgdata.parent, ignore_errors=True)


def _worker_token(runtime, tenant) -> str:
    with owner_engine().connect() as connection:
        user_id = connection.execute(
            select(memberships.c.user_id).where(memberships.c.tenant_id == tenant.id)
        ).scalar_one()
    return session_token(runtime, user_id=user_id, tenant_id=tenant.id)
