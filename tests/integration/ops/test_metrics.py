"""/metrics: closed without the bearer METRICS_TOKEN; request counts by route and status,
pool usage, tenants by status and migration results."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, update

from backend.api.metrics import FleetCollector
from backend.infrastructure.sql.tenants import tenants
from tests.integration.ops.conftest import METRICS_TOKEN
from tests.owner import owner_engine

AUTH = {"Authorization": f"Bearer {METRICS_TOKEN}"}


def samples(body: bytes) -> dict:
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_do_not_exist_without_a_configured_token(client):
    response = client.get("/metrics")
    assert response.status_code == 404
    assert response.json == {"detail": "not_found"}


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": "Bearer "}, "missing_token"),
        ({"Authorization": "Bearer wrong-token-0123456789"}, "invalid_token"),
        ({"Authorization": f"Bearer {METRICS_TOKEN}x"}, "invalid_token"),
        ({"Authorization": f"Basic {METRICS_TOKEN}"}, "invalid_token"),
    ],
)
def test_metrics_refuse_anything_but_the_token(ops_client, headers, code):
    response = ops_client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.json == {"detail": code}
    assert b"saas_http_requests_total" not in response.data


def test_requests_are_counted_by_route_and_status(ops_client):
    labels = (("method", "POST"), ("route", "/_test/items/<int:item_id>"), ("status", "200"))
    key = ("saas_http_requests_total", labels)
    before = samples(ops_client.get("/metrics", headers=AUTH).data).get(key, 0)
    for item in (1, 2, 3):
        ops_client.post(f"/_test/items/{item}", json={"data": "x"})
    response = ops_client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain; version=")
    found = samples(response.data)
    assert found[key] == before + 3
    assert found[("saas_http_request_duration_seconds_count", labels)] >= 3
    assert not any("/_test/items/1" in str(labels) for _, labels in found)


def test_pool_gauges_follow_checkouts(ops_app):
    engine = ops_app.extensions["saas"].engine
    size = REGISTRY.get_sample_value("saas_db_pool_size", {"pool": "runtime"})
    assert size == engine.pool.size()
    with engine.connect():
        with engine.connect():
            assert REGISTRY.get_sample_value("saas_db_pool_checked_out", {"pool": "runtime"}) == 2
        assert REGISTRY.get_sample_value("saas_db_pool_checked_out", {"pool": "runtime"}) == 1
    assert REGISTRY.get_sample_value("saas_db_pool_checked_out", {"pool": "runtime"}) == 0


def test_tenants_by_status_and_migration_result(runtime, make_tenant):
    fleet = FleetCollector(runtime.engine, ttl_s=0)
    before = fleet.counts()
    _active, disabled, failed, pending = (make_tenant() for _ in range(4))
    with owner_engine().begin() as connection:
        connection.execute(update(tenants).where(tenants.c.id == disabled.id).values(status="disabled"))
        connection.execute(
            update(tenants).where(tenants.c.id == failed.id).values(last_migration_error="boom")
        )
        connection.execute(update(tenants).where(tenants.c.id == pending.id).values(schema_version=None))
    after = fleet.counts()
    assert after.by_status["active"] == before.by_status["active"] + 3
    assert after.by_status["disabled"] == before.by_status["disabled"] + 1
    assert after.by_migration["at_head"] == before.by_migration["at_head"] + 2
    assert after.by_migration["failed"] == before.by_migration["failed"] + 1
    assert after.by_migration["pending"] == before.by_migration["pending"] + 1


def test_fleet_metrics_are_cached_between_scrapes(runtime, make_tenant):
    fleet = FleetCollector(runtime.engine, ttl_s=3600)
    first = fleet.counts()
    make_tenant()
    assert fleet.counts() is first


def test_scrape_shows_fleet_families(ops_app, ops_client, make_tenant, monkeypatch):
    monkeypatch.setitem(
        ops_app.extensions, "saas.fleet_metrics", FleetCollector(ops_app.extensions["saas"].engine)
    )
    make_tenant()
    found = samples(ops_client.get("/metrics", headers=AUTH).data)
    assert found[("saas_tenants", (("status", "active"),))] >= 1
    assert ("saas_tenants", (("status", "deleted"),)) in found
    assert ("saas_tenant_migrations", (("result", "failed"),)) in found


def test_an_unreadable_registry_leaves_fleet_metrics_out_not_the_scrape():
    unreachable = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    fleet = FleetCollector(unreachable, ttl_s=0)
    assert fleet.counts() is None
    assert list(fleet.collect()) == []


def test_job_queue_depth_failures_and_waiting_time(runtime):
    from sqlalchemy import text
    from sqlalchemy.exc import ProgrammingError

    fleet = FleetCollector(runtime.engine, ttl_s=0)
    queue = "metrics-test"
    first = runtime.jobs.enqueue("no_such_task", queue=queue, marker=1)
    runtime.jobs.enqueue("no_such_task", queue=queue, marker=2)
    try:
        counts = fleet.counts()
        assert counts.jobs[(queue, "todo")] == 2
        assert counts.oldest_waiting_s[queue] >= 0
        with owner_engine().begin() as connection:
            connection.execute(
                text("UPDATE jobs.procrastinate_jobs SET status = 'failed' WHERE id = :id"), {"id": first}
            )
        counts = fleet.counts()
        assert counts.jobs[(queue, "todo")] == 1 and counts.jobs[(queue, "failed")] == 1
        assert counts.failed_by_task["no_such_task"] >= 1
        # The API's role counts jobs but never reads their arguments (they name people).
        denied = pytest.raises(ProgrammingError, match="permission denied")
        with runtime.engine.connect() as connection, denied:
            connection.execute(text("SELECT args FROM jobs.procrastinate_jobs"))
    finally:
        with owner_engine().begin() as connection:
            connection.execute(
                text("DELETE FROM jobs.procrastinate_jobs WHERE queue_name = :q"), {"q": queue}
            )


def test_failed_and_hanging_jobs_by_task(runtime):
    """A failing task and a task whose attempt runs on (or whose worker died) show by name."""
    from sqlalchemy import text

    fleet = FleetCollector(runtime.engine, ttl_s=0)
    queue, task = "metrics-by-task", "metrics_probe_task"
    failed = runtime.jobs.enqueue(task, queue=queue)
    hanging = runtime.jobs.enqueue(task, queue=queue)
    try:
        with owner_engine().begin() as connection:
            connection.execute(
                text("UPDATE jobs.procrastinate_jobs SET status = 'failed' WHERE id = :id"), {"id": failed}
            )
            connection.execute(
                text("UPDATE jobs.procrastinate_jobs SET status = 'doing' WHERE id = :id"), {"id": hanging}
            )
            connection.execute(
                text(
                    "INSERT INTO jobs.procrastinate_events (job_id, type, at)"
                    " VALUES (:id, 'started', now() - interval '90 seconds')"
                ),
                {"id": hanging},
            )
        counts = fleet.counts()
        assert counts.failed_by_task[task] == 1
        assert counts.longest_running_s[task] >= 90
        names = {family.name: family for family in fleet.collect()}
        assert [s.value for s in names["saas_jobs_failed"].samples if s.labels["task"] == task] == [1]
    finally:
        with owner_engine().begin() as connection:
            connection.execute(
                text("DELETE FROM jobs.procrastinate_jobs WHERE queue_name = :q"), {"q": queue}
            )
