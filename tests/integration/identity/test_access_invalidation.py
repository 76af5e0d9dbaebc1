"""The access cache: registry changes made by any process evict what they make stale, the
cache really does answer from memory otherwise, and a lost listener degrades to a short TTL."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from sqlalchemy import make_url, text, update

from backend import create_app
from backend.api import access_cache
from backend.api.access_cache import FALLBACK_TTL_S, AccessCache
from backend.core.db import sqlalchemy_url
from backend.infrastructure.access_events import AccessChange, listener_conninfo
from backend.infrastructure.sql.identity import refresh_tokens
from backend.infrastructure.sql.tenants import tenants
from backend.service.identity import token_digest
from tests.conftest import close_app
from tests.eventually import eventually
from tests.integration.identity.conftest import bearer, mark_verified
from tests.owner import owner_engine


def settle(cache) -> None:
    """Wait until the listener handled every message sent so far (a setup's inserts notify
    too, and a late one would evict an entry a test has just cached): messages arrive in
    commit order, so once our own has been handled, so were the earlier ones."""
    before = cache._generation
    with owner_engine().begin() as connection:
        connection.execute(text("SELECT pg_notify('access_changed', 'sync')"))
    assert eventually(lambda: cache._generation, lambda generation: generation > before) > before


def changed(client, headers):
    return eventually(lambda: client.get("/api/v1/me", headers=headers), lambda r: r.status_code != 200)


def test_a_session_revoked_elsewhere_is_refused_at_once(client, signup, login, runtime, listening):
    response, body = signup()
    mark_verified(runtime, uuid.UUID(response.json["user"]["id"]))
    pair = login(body["email"]).json
    headers = bearer(pair["access_token"])
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    with owner_engine().begin() as connection:  # e.g. an operator, or another worker
        connection.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.token_hash == token_digest(pair["refresh_token"]))
            .values(revoked_at=text("now()"))
        )
    response = changed(client, headers)
    assert response.status_code == 401 and response.json == {"detail": "invalid_token"}


def test_without_its_notification_a_change_stays_unseen_until_the_ttl(client, member, listening):
    """The control for the tests above: they pass because of the notification, not because
    the cache does not cache."""
    m = member()
    settle(listening)
    assert client.get("/api/v1/me", headers=m.worker).status_code == 200
    with owner_engine().begin() as connection:
        connection.execute(text("ALTER TABLE shared.tenants DISABLE TRIGGER notify_access_changed"))
        connection.execute(update(tenants).where(tenants.c.id == m.tenant.id).values(status="disabled"))
        connection.execute(text("ALTER TABLE shared.tenants ENABLE TRIGGER notify_access_changed"))
    stale = changed(client, m.worker)
    assert stale.status_code == 200  # still the cached answer, well past FALLBACK_TTL_S
    listening.forget(AccessChange(tenant_id=m.tenant.id))
    response = client.get("/api/v1/me", headers=m.worker)
    assert response.status_code == 403 and response.json == {"detail": "tenant_disabled"}
    with owner_engine().begin() as connection:
        connection.execute(update(tenants).where(tenants.c.id == m.tenant.id).values(status="active"))


def test_other_tenants_entries_survive_a_change(client, member, listening):
    first, second = member(), member()
    settle(listening)
    for m in (first, second):
        assert client.get("/api/v1/me", headers=m.worker).status_code == 200
    with owner_engine().begin() as connection:
        connection.execute(update(tenants).where(tenants.c.id == first.tenant.id).values(status="disabled"))
    assert changed(client, first.worker).status_code == 403
    assert second.tenant.id in {key[1] for key in list(listening._entries)}
    with owner_engine().begin() as connection:
        connection.execute(update(tenants).where(tenants.c.id == first.tenant.id).values(status="active"))


def test_a_lost_listener_reconnects_and_starts_clean(app, client, member, database, listening):
    if "superuser" not in database:
        pytest.skip("terminating another role's backend needs the embedded superuser")
    m = member()
    assert client.get("/api/v1/me", headers=m.worker).status_code == 200
    assert len(listening) > 0
    with psycopg.connect(database["superuser"], autocommit=True) as connection:
        (killed,) = connection.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'saas-access-listener'"
        ).fetchone()
    assert killed >= 1
    # Messages may have been lost while it was away: listening again means an empty cache.
    assert eventually(lambda: not listening._listener.healthy, bool, within_s=15)
    assert listening.wait_listening(15)
    assert len(listening) == 0
    assert client.get("/api/v1/me", headers=m.worker).status_code == 200


class FakeListener:
    def __init__(self, healthy: bool) -> None:
        self.healthy = healthy

    def start(self) -> None:
        pass

    def wait_healthy(self, timeout: float) -> bool:
        return self.healthy


def record(n: int) -> str:
    return f"record {n}"


def test_an_answer_read_before_a_change_is_not_stored_after_it():
    cache = AccessCache(listener_factory=lambda c: FakeListener(healthy=True))
    key = (uuid.uuid4(), uuid.uuid4(), None)
    loads = []

    def load_racing_a_change():
        loads.append(1)
        cache.forget(AccessChange(tenant_id=key[1]))  # committed while we were reading
        return record(len(loads))

    assert cache.get(key, load_racing_a_change) == "record 1"
    assert cache.get(key, lambda: record(99)) == "record 99"  # not the stale one
    assert cache.get(key, lambda: record(100)) == "record 99"  # now it is cached


def test_while_not_listening_entries_expire_after_the_fallback_ttl(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(access_cache.time, "monotonic", lambda: now[0])
    key = (uuid.uuid4(), uuid.uuid4(), None)
    deaf = AccessCache(listener_factory=lambda c: FakeListener(healthy=False))
    listening = AccessCache(listener_factory=lambda c: FakeListener(healthy=True))
    for cache in (deaf, listening):
        assert cache.get(key, lambda: record(1)) == "record 1"
    now[0] += FALLBACK_TTL_S + 0.5
    assert deaf.get(key, lambda: record(2)) == "record 2"
    assert listening.get(key, lambda: record(2)) == "record 1"


@pytest.mark.parametrize(
    ("change", "evicted"),
    [
        (AccessChange(tenant_id=uuid.UUID(int=2)), {"a"}),
        (AccessChange(user_id=uuid.UUID(int=1)), {"a", "b"}),
        (AccessChange(user_id=uuid.UUID(int=1), tenant_id=uuid.UUID(int=3)), {"b"}),
        (AccessChange(session_id=uuid.UUID(int=9)), {"b"}),
        (None, {"a", "b", "c"}),
    ],
)
def test_a_change_evicts_exactly_its_entries(change, evicted):
    cache = AccessCache(listener_factory=lambda c: FakeListener(healthy=True))
    u1, u4, t2, t3, s9 = (uuid.UUID(int=i) for i in (1, 4, 2, 3, 9))
    keys = {"a": (u1, t2, None), "b": (u1, t3, s9), "c": (u4, t3, None)}
    for name, key in keys.items():
        cache.get(key, lambda n=name: n)
    cache.forget(change)
    kept = {name for name, key in keys.items() if cache.get(key, lambda: "reloaded") == name}
    assert kept == set(keys) - evicted


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (f"tenant:{uuid.UUID(int=5)}", AccessChange(tenant_id=uuid.UUID(int=5))),
        (f"user:{uuid.UUID(int=5)}", AccessChange(user_id=uuid.UUID(int=5))),
        (f"session:{uuid.UUID(int=5)}", AccessChange(session_id=uuid.UUID(int=5))),
        (
            f"member:{uuid.UUID(int=5)}:{uuid.UUID(int=6)}",
            AccessChange(user_id=uuid.UUID(int=5), tenant_id=uuid.UUID(int=6)),
        ),
        ("tenant:not-a-uuid", None),
        ("something:else", None),
        ("", None),
    ],
)
def test_payloads_parse_or_mean_drop_everything(payload, expected):
    assert AccessChange.parse(payload) == expected


def test_apps_on_two_databases_in_one_process_each_hear_their_own(runtime, listening, settings, database):
    """Each app's cache listens on that app's database: the test session serves the embedded
    server and the Citus cluster side by side, and one process-wide cache listened only on the
    database of the first app that served, so the other app missed every change (seven
    identity tests failed in `make test` whenever a Citus suite ran first in their worker)."""
    if "superuser" not in database:
        pytest.skip("creating a second database needs the embedded superuser")
    name = f"second_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database["superuser"], autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
        connection.execute(f'GRANT CONNECT ON DATABASE "{name}" TO "{runtime.runtime_role}"')
    second_url = make_url(sqlalchemy_url(settings.database_url)).set(database=name).render_as_string(False)
    other = create_app(settings.model_copy(update=dict(database_url=second_url)))
    theirs = other.extensions["saas"].access_cache
    try:
        assert theirs is not listening and theirs.wait_listening(10)
        ours = (listening, theirs, settings.database_url)
        for cache, bystander, url in (ours, (theirs, listening, second_url)):
            before, unmoved = cache._generation, bystander._generation
            with psycopg.connect(listener_conninfo(url), autocommit=True) as connection:
                connection.execute("SELECT pg_notify('access_changed', 'sync')")
            assert eventually(lambda c=cache: c._generation, lambda g, b=before: g > b) > before
            assert bystander._generation == unmoved
    finally:
        close_app(other)
        with psycopg.connect(database["superuser"], autocommit=True) as connection:
            connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
