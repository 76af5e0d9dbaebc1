"""Operators disable and enable tenants: the registry row changes and the audit trail records
it, through the SQL unit of work and the CLI. What the lifecycle refuses (a deleted, scheduled
or unfinished tenant, an unknown slug) is a service rule, tested on fakes in
tests/unit/service/test_tenant_operations.py and test_tenants_and_deletion.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from backend.domain.tenants import DisableReason, TenantStatus
from backend.infrastructure.sql.audit import audit_events
from backend.infrastructure.sql.tenants import tenants
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service import tenants as service
from tests.owner import owner_engine


@pytest.fixture()
def uow(runtime):
    return lambda: SqlRegistryUnitOfWork(owner_engine(), runtime.runtime_role)


def row(runtime, tenant):
    with owner_engine().connect() as connection:
        return connection.execute(select(tenants).where(tenants.c.id == tenant.id)).one()


def events(runtime, tenant) -> list[tuple[str, str | None, dict]]:
    with owner_engine().connect() as connection:
        rows = connection.execute(
            select(audit_events.c.event, audit_events.c.actor_role, audit_events.c.metadata)
            .where(audit_events.c.tenant_id == tenant.id, audit_events.c.event.like("tenant.%abled"))
            .order_by(audit_events.c.id)
        )
        return [tuple(r) for r in rows]


def test_disable_then_enable_changes_the_registry_row_and_is_audited(make_tenant, runtime, uow):
    tenant = make_tenant()
    now = datetime.now(UTC)
    disabled = service.disable_tenant(slug=tenant.slug, reason=DisableReason.NON_PAYMENT, now=now, uow=uow())
    assert disabled.status is TenantStatus.DISABLED
    stored = row(runtime, tenant)
    assert (stored.status, stored.disabled_at) == ("disabled", now)

    # Disabling again is a no-op: the first date stays, no second event.
    service.disable_tenant(slug=tenant.slug, reason=DisableReason.OTHER, now=datetime.now(UTC), uow=uow())
    assert row(runtime, tenant).disabled_at == now

    enabled = service.enable_tenant(slug=tenant.slug, uow=uow())
    assert enabled.status is TenantStatus.ACTIVE
    stored = row(runtime, tenant)
    assert (stored.status, stored.disabled_at) == ("active", None)
    assert events(runtime, tenant) == [
        ("tenant.disabled", "operator", {"slug": tenant.slug, "reason": "non_payment"}),
        ("tenant.enabled", "operator", {"slug": tenant.slug}),
    ]


def test_cli_disable_and_enable(app, make_tenant, runtime):
    tenant = make_tenant()
    cli = app.test_cli_runner()
    result = cli.invoke(args=["tenants", "disable", "--slug", tenant.slug, "--reason", "abuse"])
    assert result.exit_code == 0, result.output
    assert "is disabled since" in result.output
    assert row(runtime, tenant).status == "disabled"

    result = cli.invoke(args=["tenants", "enable", "--slug", tenant.slug])
    assert result.exit_code == 0, result.output
    assert row(runtime, tenant).status == "active"

    result = cli.invoke(args=["tenants", "disable", "--slug", tenant.slug, "--reason", "because I said so"])
    assert result.exit_code == 2  # only the fixed reasons: no free text reaches the audit trail
    result = cli.invoke(args=["tenants", "enable", "--slug", "no-such-tenant"])
    assert result.exit_code == 1
    assert "not_found" in result.output
