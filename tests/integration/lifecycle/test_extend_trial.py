"""`flask tenants extend-trial --slug S --days N` (the contract's operator command): an expired
trial becomes active again from now, a running one is extended from its end, audited; bad input
and a workspace being deleted are refused with one line."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.tenants import tenants
from tests.owner import owner_engine


def trial_end(runtime, tenant):
    with owner_engine().connect() as connection:
        return connection.execute(
            select(tenants.c.trial_ends_at).where(tenants.c.id == tenant.id)
        ).scalar_one()


def set_tenant(runtime, tenant, **values) -> None:
    with owner_engine().begin() as connection:
        connection.execute(update(tenants).where(tenants.c.id == tenant.id).values(**values))


def test_an_expired_trial_is_extended_from_now_and_the_worker_can_write_again(
    app, runtime, make_tenant, worker_token, client
):
    tenant, other = make_tenant(), make_tenant()
    set_tenant(runtime, tenant, trial_ends_at=datetime.now(UTC) - timedelta(days=3))
    other_end = trial_end(runtime, other)
    headers = worker_token(tenant)
    runtime.access_cache.forget()
    assert client.post("/api/v1/clients", json={"name": "X"}, headers=headers).json["detail"] == "read_only"

    result = app.test_cli_runner().invoke(
        args=["tenants", "extend-trial", "--slug", tenant.slug, "--days", "7"]
    )
    assert result.exit_code == 0, result.output
    assert f"{tenant.slug} ({tenant.id}) is on trial until" in result.output
    end = trial_end(runtime, tenant)
    assert timedelta(days=6, hours=23) < end - datetime.now(UTC) <= timedelta(days=7)
    assert trial_end(runtime, other) == other_end  # nobody else's trial moved
    runtime.access_cache.forget()
    assert client.post("/api/v1/clients", json={"name": "X"}, headers=headers).status_code == 201
    with owner_engine().connect() as connection:
        event = connection.execute(
            select(audit_events.c.metadata).where(
                audit_events.c.tenant_id == tenant.id, audit_events.c.event == "tenant.trial_extended"
            )
        ).scalar_one()
    assert event == {"slug": tenant.slug, "days": 7}


def test_a_running_trial_is_extended_from_its_end(app, runtime, make_tenant):
    tenant = make_tenant()
    before = trial_end(runtime, tenant)
    result = app.test_cli_runner().invoke(
        args=["tenants", "extend-trial", "--slug", tenant.slug, "--days", "30"]
    )
    assert result.exit_code == 0, result.output
    assert trial_end(runtime, tenant) == before + timedelta(days=30)


def test_refusals_are_one_line_and_change_nothing(app, runtime, make_tenant):
    tenant = make_tenant()
    before = trial_end(runtime, tenant)
    cli = app.test_cli_runner()
    for args, expected in (
        (["--slug", "no-such-tenant", "--days", "7"], "not_found"),
        (["--slug", tenant.slug, "--days", "0"], "days"),
        (["--slug", tenant.slug, "--days", "400"], "days"),
    ):
        result = cli.invoke(args=["tenants", "extend-trial", *args])
        assert result.exit_code != 0 and expected in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
    set_tenant(
        runtime, tenant, status="deletion_scheduled", deletion_due_at=datetime.now(UTC) + timedelta(days=30)
    )
    refused = cli.invoke(args=["tenants", "extend-trial", "--slug", tenant.slug, "--days", "7"])
    assert refused.exit_code != 0 and "tenant_deleted" in refused.output
    assert trial_end(runtime, tenant) == before
