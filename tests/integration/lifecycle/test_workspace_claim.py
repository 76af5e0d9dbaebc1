"""Signup as the runtime role (issue 14): the API's process connects as the runtime role only;
signup claims a pre-built workspace with the pool warm, answers 503 `tenant_unavailable` +
Retry-After with it empty (nothing written; the worker builds one and the same signup then
works), never hands one workspace to two signups when concurrent signups exhaust it, and is
never failed by the refill it asks for."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import uuid

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from backend import create_api
from backend.cli.owner import EXTENSION as OWNER_EXTENSION
from backend.core.config import PROJECT_ROOT
from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.identity import users
from backend.infrastructure.sql.privileges import grant_shared
from backend.infrastructure.sql.tenants import tenants
from backend.service.tenants import PROVISIONING_QUEUE, REFILL_SPARES_TASK, request_spare_refill
from tests.integration.faults.killing import (
    BIN,
    backends_blocked_by,
    cli_env,
    held_lock,
    orphans,
    relations_created,
    wait_backends_gone,
)
from tests.integration.identity.conftest import signup_body
from tests.integration.lifecycle.test_spare_schemas import spare_ids
from tests.owner import owner_engine


def refill_jobs() -> list[str]:
    """Statuses of the queued spare refills."""
    with owner_engine().connect() as connection:
        return list(
            connection.execute(
                text("SELECT status::text FROM jobs.procrastinate_jobs WHERE task_name = :t ORDER BY id"),
                {"t": REFILL_SPARES_TASK},
            ).scalars()
        )


@pytest.fixture()
def no_refill_jobs():
    """No refill job waits before or after the test (another test's run_jobs would run it)."""

    def clear() -> None:
        with owner_engine().begin() as connection:
            connection.execute(
                text("DELETE FROM jobs.procrastinate_jobs WHERE task_name = :t AND status <> 'doing'"),
                {"t": REFILL_SPARES_TASK},
            )

    clear()
    yield
    clear()


@pytest.fixture()
def serving_app(settings):
    """The app gunicorn serves (`backend.create_api()`), given both URLs as a careless
    deployment would: it must keep only the runtime one."""
    app = create_api(settings)
    yield app
    rt = app.extensions["saas"]
    rt.jobs.close()
    rt.engine.dispose()


def user_exists(email: str) -> bool:
    with owner_engine().connect() as connection:
        return connection.execute(select(users.c.id).where(users.c.email == email)).first() is not None


def latest_audit_id() -> int:
    with owner_engine().connect() as connection:
        return connection.execute(select(func.coalesce(func.max(audit_events.c.id), 0))).scalar_one()


def backends() -> dict[int, str]:
    """Every session on the test database: pid -> role."""
    with owner_engine().connect() as connection:
        rows = connection.execute(
            text(
                "SELECT pid, usename FROM pg_catalog.pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        return {row.pid: row.usename for row in rows}


def test_the_api_process_holds_and_uses_the_runtime_role_only(
    serving_app, settings, runtime, spare_pool, no_refill_jobs
):
    rt = serving_app.extensions["saas"]
    assert OWNER_EXTENSION not in serving_app.extensions
    assert not hasattr(rt, "owner_engine") and rt.settings.migration_database_url is None
    engines = [value for value in vars(rt).values() if isinstance(value, Engine)]
    assert engines == [rt.engine]
    owner_url = settings.migration_database_url
    assert owner_url not in repr(vars(rt)) and owner_url not in repr(serving_app.config)

    spare_pool.refill(target=1)
    before = backends()
    client = serving_app.test_client()
    assert client.get("/health/ready").status_code == 200
    assert client.post("/api/v1/auth/signup", json=signup_body()).status_code == 201  # claims
    empty = client.post("/api/v1/auth/signup", json=signup_body())  # enqueues a refill
    assert empty.status_code == 503 and refill_jobs() == ["todo"]
    opened = {pid: role for pid, role in backends().items() if pid not in before}
    assert opened and set(opened.values()) == {runtime.runtime_role}, opened
    with rt.engine.connect() as connection:
        assert connection.execute(text("SELECT current_user")).scalar_one() == runtime.runtime_role


def test_signup_with_a_warm_pool_claims_a_spare_and_asks_for_one_refill(
    client, runtime, spare_pool, no_refill_jobs, monkeypatch
):
    spare_pool.refill(target=3)
    spares = spare_ids(runtime)
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update=dict(spare_schemas=3)))
    first = client.post("/api/v1/auth/signup", json=signup_body())
    assert first.status_code == 201, first.json
    assert uuid.UUID(first.json["tenant"]["id"]) in spares
    assert refill_jobs() == ["todo"]  # the pool went under SPARE_SCHEMAS
    second = client.post("/api/v1/auth/signup", json=signup_body())
    assert second.status_code == 201 and uuid.UUID(second.json["tenant"]["id"]) in spares
    assert refill_jobs() == ["todo"]  # the queueing lock: one waiting refill, however many ask
    assert spare_ids(runtime) == spares - {uuid.UUID(r.json["tenant"]["id"]) for r in (first, second)}


def test_signup_with_an_empty_pool_answers_503_then_succeeds_once_the_worker_ran(
    client, runtime, spare_pool, no_refill_jobs, run_jobs
):
    body = signup_body()
    response = client.post("/api/v1/auth/signup", json=body)
    assert response.status_code == 503, response.json
    assert response.json == {
        "detail": "tenant_unavailable",
        "message": "no workspace is ready yet: retry in a few seconds",
    }
    assert int(response.headers["Retry-After"]) > 0
    # Nothing was recorded: the same signup is simply sent again.
    assert not user_exists(body["email"]) and refill_jobs() == ["todo"]
    with owner_engine().connect() as connection:
        assert (
            connection.execute(select(tenants.c.id).where(tenants.c.slug == body["workspace_slug"])).all()
            == []
        )

    last_event = latest_audit_id()
    run_jobs()  # the worker: builds one spare even with the suite's SPARE_SCHEMAS=0
    assert len(spare_ids(runtime)) == 1 and refill_jobs() == []
    with owner_engine().connect() as connection:
        refilled = (
            connection.execute(
                select(audit_events.c.metadata).where(
                    audit_events.c.event == "spares.refilled", audit_events.c.id > last_event
                )
            )
            .scalars()
            .all()
        )
    assert refilled == [{"count": 1, "dropped": 0, "reason": "signup"}]

    again = client.post("/api/v1/auth/signup", json=body)
    assert again.status_code == 201, again.json
    assert user_exists(body["email"]) and spare_ids(runtime) == set()


def test_concurrent_signups_exhausting_the_pool_never_share_a_workspace(
    app, runtime, spare_pool, no_refill_jobs
):
    spare_pool.refill(target=3)
    spares = spare_ids(runtime)
    bodies = [signup_body() for _ in range(6)]
    barrier = threading.Barrier(len(bodies), timeout=30)
    responses: list = [None] * len(bodies)

    def run(index: int) -> None:
        test_client = app.test_client()
        barrier.wait()
        responses[index] = test_client.post("/api/v1/auth/signup", json=bodies[index])

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = [r for r in responses if r.status_code == 201]
    unavailable = [r for r in responses if r.status_code == 503]
    assert len(created) == 3 and len(unavailable) == 3, [r.status_code for r in responses]
    assert all(r.json["detail"] == "tenant_unavailable" and r.headers["Retry-After"] for r in unavailable)
    workspaces = [uuid.UUID(r.json["tenant"]["id"]) for r in created]
    assert len(set(workspaces)) == 3 and set(workspaces) == spares
    assert spare_ids(runtime) == set() and refill_jobs() == ["todo"]
    with owner_engine().connect() as connection:
        registered = (
            connection.execute(select(tenants.c.id).where(tenants.c.id.in_(workspaces))).scalars().all()
        )
    assert sorted(registered) == sorted(workspaces)


def test_a_refill_that_cannot_be_asked_for_fails_no_signup(
    client, runtime, spare_pool, no_refill_jobs, monkeypatch, caplog
):
    """The enqueue refused by PostgreSQL (the runtime role's INSERT on the queue taken away):
    the warm signup still succeeds, the empty one still answers 503 tenant_unavailable, never
    a 500."""
    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update=dict(spare_schemas=5)))
    spare_pool.refill(target=1)
    with owner_engine().begin() as connection:
        connection.exec_driver_sql(f'REVOKE INSERT ON jobs.procrastinate_jobs FROM "{runtime.runtime_role}"')
    try:
        warm = client.post("/api/v1/auth/signup", json=signup_body())
        assert warm.status_code == 201, warm.json
        empty = client.post("/api/v1/auth/signup", json=signup_body())
        assert empty.status_code == 503 and empty.json["detail"] == "tenant_unavailable"
    finally:
        with owner_engine().begin() as connection:
            grant_shared(connection, runtime.runtime_role)
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings.count("spare refill not enqueued: ConnectorException") == 2
    assert refill_jobs() == []


def test_a_failing_refill_job_fails_no_signup(
    client, runtime, spare_pool, no_refill_jobs, run_jobs, monkeypatch
):
    """The worker's refill fails (its jobs stay `failed` in the queue): signups keep claiming
    what is ready, and answer 503 when nothing is. Once the cause is gone, the next refill
    (periodic, or asked for by the next signup) does the work: failed refills need no retry."""

    def broken(*args, **kwargs):
        raise RuntimeError("no room for another schema")

    spare_pool.refill(target=1)
    monkeypatch.setattr("backend.infrastructure.spares.SparePool.refill", broken)
    assert client.post("/api/v1/auth/signup", json=signup_body()).status_code == 201
    assert client.post("/api/v1/auth/signup", json=signup_body()).status_code == 503
    run_jobs()
    assert set(refill_jobs()) == {"failed"}  # the one a signup asked for, and the periodic one
    assert client.post("/api/v1/auth/signup", json=signup_body()).status_code == 503
    monkeypatch.undo()
    run_jobs()  # the refill the last signup asked for
    assert client.post("/api/v1/auth/signup", json=signup_body()).status_code == 201


def test_the_periodic_refill_keeps_the_pool_at_its_size_and_is_idempotent(
    app, runtime, spare_pool, monkeypatch
):
    from backend.cli.spares import refill_spare_pool

    monkeypatch.setattr(runtime, "settings", runtime.settings.model_copy(update=dict(spare_schemas=2)))
    with app.app_context():
        first = refill_spare_pool(app, reason="periodic")
        again = refill_spare_pool(app, reason="periodic")
    assert (first.built, again.built, again.dropped) == (2, 0, 0)
    assert len(spare_ids(runtime)) == 2


@pytest.mark.slow
def test_a_worker_killed_while_building_a_spare_leaves_nothing_and_the_next_run_builds_it(
    settings, runtime, spare_pool, no_refill_jobs, run_jobs
):
    """`flask --app backend worker` SIGKILLed in the middle of a refill (schema, tables and
    tenant role made, the spare's row next): no half-built spare, no orphan schema or role; the
    refill a later signup asks for builds it, once."""
    before = orphans(owner_engine())
    runtime.jobs.enqueue(REFILL_SPARES_TASK, queue=PROVISIONING_QUEUE, queueing_lock=REFILL_SPARES_TASK)
    with held_lock(owner_engine(), "shared.spare_schemas", "SHARE") as holder:
        worker = subprocess.Popen(
            [str(BIN / "flask"), "--app", "backend", "worker"],
            env=cli_env(settings),
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            blocked = backends_blocked_by(owner_engine(), holder, worker)
            assert relations_created(owner_engine(), blocked) > 0
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=60)
    wait_backends_gone(owner_engine(), blocked)
    assert spare_ids(runtime) == set() and orphans(owner_engine()) == before
    assert "doing" in refill_jobs()  # the killed run's job, left for the runbook

    run_jobs()  # whatever the killed worker's periodic deferrer queued meanwhile
    # A signup finds nothing, asks again (the lock holds only waiting jobs), the worker builds.
    assert request_spare_refill(jobs=runtime.jobs)
    run_jobs()
    assert len(spare_ids(runtime)) == 1 and orphans(owner_engine()) == before
    with owner_engine().begin() as connection:
        connection.execute(
            text("DELETE FROM jobs.procrastinate_jobs WHERE task_name = :t"), {"t": REFILL_SPARES_TASK}
        )


def test_a_refill_asked_for_while_one_waits_is_that_one_not_a_failure(runtime, no_refill_jobs):
    """The API enqueues as the runtime role: a second refill under the queueing lock is
    procrastinate's AlreadyEnqueued (the waiting job will do the work), which it can only tell
    from other failures when PostgreSQL shows the role the conflicting key."""

    def enqueue() -> int | None:
        return runtime.jobs.enqueue(
            REFILL_SPARES_TASK, queue=PROVISIONING_QUEUE, queueing_lock=REFILL_SPARES_TASK
        )

    first, again = enqueue(), enqueue()
    assert first is not None and again is None
    assert request_spare_refill(jobs=runtime.jobs)
    assert refill_jobs() == ["todo"]
