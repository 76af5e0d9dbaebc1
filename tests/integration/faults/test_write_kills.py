"""The request's database backend killed in the middle of a write (after its INSERT ran,
before the commit): 503 `database_unavailable` with Retry-After, the row is absent (never half
there: no appointment without its client, no media row without its file or file without its
row), and the same request then succeeds, once."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import text

from backend import create_app
from backend.core.tenancy import quoted_schema
from backend.infrastructure.sql.appointments import SqlAppointmentRepository
from backend.infrastructure.sql.clients import SqlClientRepository
from backend.infrastructure.sql.media import SqlMediaRepository
from tests.conftest import close_app
from tests.integration.faults.killing import WAIT_S, poll
from tests.integration.proof.seed import png_with_text, upload
from tests.owner import owner_engine

pytestmark = pytest.mark.slow
API = "/api/v1"


@pytest.fixture()
def fault_app(settings):
    application = create_app(settings.model_copy(update=dict(pool_size=2, pool_max_overflow=0)))
    yield application
    close_app(application)


def stall_after(monkeypatch, repository: type, marker: str) -> None:
    """The repository's `add` runs its INSERT, then its transaction stalls in a marked sleep."""
    original = repository.add

    def add_then_stall(self, *args, **kwargs):
        created = original(self, *args, **kwargs)
        self._connection.execute(text(f"SELECT pg_sleep({WAIT_S}) /* {marker} */"))
        return created

    monkeypatch.setattr(repository, "add", add_then_stall)


def kill_marked_backend(engine, marker: str) -> threading.Thread:
    """Terminate the backend once it sits in the marked sleep (the runtime role may signal its
    own backends: no superuser needed)."""

    def kill() -> None:
        (pid,) = poll(
            engine,
            "SELECT pid FROM pg_stat_activity WHERE query LIKE :marker AND pid <> pg_backend_pid()",
            {"marker": f"%{marker}%"},
            bool,
            "the stalled write",
        )
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    killer = threading.Thread(target=kill)
    killer.start()
    return killer


def killed_midway(monkeypatch, fault_app, repository: type, send):
    marker = f"fault-{uuid.uuid4().hex}"
    stall_after(monkeypatch, repository, marker)
    killer = kill_marked_backend(fault_app.extensions["saas"].engine, marker)
    try:
        response = send()
    finally:
        killer.join()
        monkeypatch.undo()
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.json == {"detail": "database_unavailable"}
    assert int(response.headers["Retry-After"]) > 0
    return response


def count(runtime, tenant, table: str) -> int:
    with owner_engine().connect() as connection:
        query = f"SELECT count(*) FROM {quoted_schema(tenant.schema_name)}.{table}"
        return connection.execute(text(query)).scalar_one()


def test_killed_while_adding_a_client(monkeypatch, fault_app, runtime, make_tenant, worker_token):
    tenant = make_tenant()
    http, headers = fault_app.test_client(), worker_token(tenant)
    body = {"name": "Half", "email": "half@example.com"}
    killed_midway(
        monkeypatch,
        fault_app,
        SqlClientRepository,
        lambda: http.post(f"{API}/clients", json=body, headers=headers),
    )
    assert count(runtime, tenant, "clients") == 0
    again = http.post(f"{API}/clients", json=body, headers=headers)
    assert again.status_code == 201  # no leftover holds the email: it was never there
    assert [c["name"] for c in http.get(f"{API}/clients", headers=headers).json] == ["Half"]


def test_killed_while_booking_an_appointment(monkeypatch, fault_app, runtime, make_tenant, worker_token):
    tenant = make_tenant()
    http, headers = fault_app.test_client(), worker_token(tenant)
    person = http.post(f"{API}/clients", json={"name": "Ann"}, headers=headers).json
    body = {
        "client_id": person["id"],
        "starts_at": "2031-02-03T09:00:00+00:00",
        "ends_at": "2031-02-03T10:00:00+00:00",
    }
    killed_midway(
        monkeypatch,
        fault_app,
        SqlAppointmentRepository,
        lambda: http.post(f"{API}/appointments", json=body, headers=headers),
    )
    assert count(runtime, tenant, "appointments") == 0
    again = http.post(f"{API}/appointments", json=body, headers=headers)
    assert again.status_code == 201  # the slot is free: the killed booking holds nothing
    assert len(http.get(f"{API}/appointments", headers=headers).json) == 1


def test_killed_while_storing_a_file(monkeypatch, fault_app, settings, runtime, make_tenant, worker_token):
    tenant = make_tenant()
    http, headers = fault_app.test_client(), worker_token(tenant)
    person = http.post(f"{API}/clients", json={"name": "Ann"}, headers=headers).json
    content = png_with_text("half")

    def send():
        return upload(http, headers, content, "half.png", client_id=person["id"])

    killed_midway(monkeypatch, fault_app, SqlMediaRepository, send)
    assert count(runtime, tenant, "media") == 0
    media_dir = settings.media_dir / str(tenant.id)
    assert not media_dir.exists() or not any(media_dir.iterdir())  # the file went with the row
    assert send().status_code == 201
    (item,) = http.get(f"{API}/media", headers=headers).json
    assert http.get(f"{API}/media/{item['id']}/content", headers=headers).data == content
