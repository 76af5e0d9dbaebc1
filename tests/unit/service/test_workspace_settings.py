"""The workspace's second-factor requirement on in-memory units of work: only a worker whose
own factor is on may switch it on, a refusal changes nothing and records nothing, a change is
recorded once, a request that changes nothing records nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from backend.domain.errors import Conflict, NotFound
from backend.domain.identity import Role
from backend.service import tenants, workspace_settings
from tests.unit.fakes import FakeRegistryUnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def workspace(uow):
    tenant = tenants.provision_tenant(
        slug="acme", name="Acme", owner_email="o@example.com", trial_days=14, now=NOW, uow=uow
    )
    owner = uow.users.id_by_email("o@example.com")
    return tenant, owner


def change(uow, tenant, user_id, required):
    return workspace_settings.update_settings(
        tenant_id=tenant.id, user_id=user_id, role=Role.WORKER, mfa_required_for_workers=required, uow=uow
    )


def test_requiring_a_factor_needs_ones_own_and_a_refusal_changes_nothing():
    uow = FakeRegistryUnitOfWork()
    tenant, owner = workspace(uow)
    events_before = len(uow.audit.events)
    with pytest.raises(Conflict) as refused:
        change(uow, tenant, owner, True)
    assert refused.value.code == "mfa_not_enabled"
    assert workspace_settings.get_settings(tenant_id=tenant.id, uow=uow).mfa_required_for_workers is False
    assert len(uow.audit.events) == events_before
    # A factor only pending (enrolment not confirmed) is not enough.
    uow.mfa.start(owner, b"sealed")
    with pytest.raises(Conflict):
        change(uow, tenant, owner, True)


def test_a_change_is_recorded_once_and_a_no_op_not_at_all():
    uow = FakeRegistryUnitOfWork()
    tenant, owner = workspace(uow)
    uow.mfa.start(owner, b"sealed")
    uow.mfa.enable(owner, NOW, 1)
    assert change(uow, tenant, owner, True).mfa_required_for_workers is True
    assert change(uow, tenant, owner, True).mfa_required_for_workers is True
    assert change(uow, tenant, owner, None).mfa_required_for_workers is True  # nothing asked
    recorded = [fields for event, fields in uow.audit.events if event == "tenant.mfa_policy_changed"]
    assert [f["metadata"] for f in recorded] == [{"required": True}]
    assert recorded[0]["tenant_id"] == tenant.id and recorded[0]["actor_user_id"] == owner
    # Switching it off asks for no factor here (over HTTP, the access gate holds a worker
    # without one at the enrolment routes first).
    uow.mfa.remove(owner)
    assert change(uow, tenant, owner, False).mfa_required_for_workers is False
    assert [f["metadata"] for e, f in uow.audit.events if e == "tenant.mfa_policy_changed"][-1] == {
        "required": False
    }


def test_an_unknown_workspace_is_not_found():
    uow = FakeRegistryUnitOfWork()
    with pytest.raises(NotFound):
        workspace_settings.get_settings(tenant_id=uuid.uuid4(), uow=uow)
    with pytest.raises(NotFound):
        change(uow, type("T", (), {"id": uuid.uuid4()}), uuid.uuid4(), True)
