"""Provisioning and deletion rules on in-memory units of work (tests/unit/fakes.py): one
transaction or nothing, spares first, audit events, the deletion's grace period and its
cancellation. The SQL, the catalog and concurrent signups are tested in tests/integration."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from backend.domain.errors import Conflict, Invalid, NotFound
from backend.domain.identity import Role
from backend.domain.lifecycle import Actor
from backend.domain.tenants import DisableReason, SpareSchema, TenantStatus, schema_name_for
from backend.service import deletion, tenants
from tests.unit.fakes import FakeDeletionUnitOfWork, FakeRegistryUnitOfWork

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def provision(uow, slug="acme", **extra):
    return tenants.provision_tenant(
        slug=slug, name="Acme", owner_email="owner@example.com", trial_days=14, now=NOW, uow=uow, **extra
    )


def test_provisioning_creates_owner_schema_row_membership_and_event_in_one_commit():
    uow = FakeRegistryUnitOfWork()
    tenant = provision(uow)
    assert uow.commits == 1
    assert uow.tenants.get(tenant.id) == tenant
    assert tenant.status is TenantStatus.ACTIVE and tenant.trial_ends_at == NOW + timedelta(days=14)
    assert (
        uow.schemas.schemas
        == {tenant.schema_name: uow.schemas.head}
        == {schema_name_for(tenant.id): "r_head"}
    )
    owner = uow.users.by_email("owner@example.com")
    assert uow.memberships.get(owner.id, tenant.id).role is Role.WORKER
    assert uow.audit.names() == ["tenant.provisioned"]


def test_a_spare_at_head_is_claimed_and_gives_the_tenant_its_id():
    uow = FakeRegistryUnitOfWork()
    spare = SpareSchema(id=uuid.uuid4(), revision="r_head")
    uow.schemas.spares.append(spare)
    tenant = provision(uow)
    assert tenant.id == spare.id and tenant.schema_version == "r_head"
    assert uow.schemas.schemas == {}, "nothing created when a spare was claimed"


def test_a_taken_slug_leaves_nothing_behind_not_even_the_schema_or_the_owner():
    uow = FakeRegistryUnitOfWork()
    provision(uow)
    schemas, users = dict(uow.schemas.schemas), dict(uow.users.rows)
    with pytest.raises(Conflict) as taken:
        tenants.provision_tenant(
            slug="acme", name="Other", owner_email="new@example.com", trial_days=14, now=NOW, uow=uow
        )
    assert taken.value.code == "slug_taken"
    assert uow.schemas.schemas == schemas and uow.users.rows == users and uow.commits == 1


def test_a_signup_with_a_password_for_a_known_email_is_refused():
    uow = FakeRegistryUnitOfWork()
    provision(uow)
    with pytest.raises(Conflict) as taken:
        provision(uow, slug="other", owner_password_hash="$argon2id$x")
    assert taken.value.code == "email_taken"


def test_an_invalid_slug_is_refused_before_the_unit_of_work_opens():
    uow = FakeRegistryUnitOfWork()
    with pytest.raises(Invalid):
        provision(uow, slug="Not A Slug!")
    assert uow.commits == 0 and uow.schemas.schemas == {}


def test_disabling_is_audited_once_and_twice_changes_nothing():
    uow = FakeRegistryUnitOfWork()
    tenant = provision(uow)
    tenants.disable_tenant(slug=tenant.slug, reason=DisableReason.ABUSE, now=NOW, uow=uow)
    tenants.disable_tenant(slug=tenant.slug, reason=DisableReason.ABUSE, now=NOW, uow=uow)
    assert uow.tenants.get(tenant.id).status is TenantStatus.DISABLED
    assert uow.audit.names().count("tenant.disabled") == 1
    tenants.enable_tenant(slug=tenant.slug, uow=uow)
    assert uow.tenants.get(tenant.id).status is TenantStatus.ACTIVE


def test_an_unknown_slug_is_not_found_for_operator_commands():
    with pytest.raises(NotFound):
        tenants.enable_tenant(slug="ghost", uow=FakeRegistryUnitOfWork())


def test_a_downgrade_moves_schema_and_registry_together_and_is_audited():
    uow = FakeRegistryUnitOfWork()
    tenant = provision(uow)
    done = tenants.downgrade_tenant(slug=tenant.slug, revision="r_first", uow=uow)
    assert (done.from_version, done.version) == ("r_head", "r_first")
    assert uow.schemas.schemas[tenant.schema_name] == "r_first"
    assert uow.tenants.get(tenant.id).schema_version == "r_first"
    event, fields = uow.audit.events[-1]
    assert event == "tenant.downgraded"
    assert fields["metadata"] == {"slug": tenant.slug, "from_version": "r_head", "schema_version": "r_first"}
    # the next plan sees it behind head
    assert [t.id for t in tenants.plan_migration(head="r_head", uow=uow).pending] == [tenant.id]


def test_a_downgrade_that_cannot_happen_changes_nothing():
    uow = FakeRegistryUnitOfWork()
    tenant = provision(uow)
    with pytest.raises(Invalid):
        tenants.downgrade_tenant(slug=tenant.slug, revision="r_head", uow=uow)
    uow.tenants.locked.add(tenant.id)  # another migrate run holds it
    with pytest.raises(Conflict):
        tenants.downgrade_tenant(slug=tenant.slug, revision="r_first", uow=uow)
    with pytest.raises(NotFound):
        tenants.downgrade_tenant(slug="ghost", revision="r_first", uow=uow)
    assert uow.tenants.get(tenant.id).schema_version == "r_head"
    assert uow.schemas.schemas[tenant.schema_name] == "r_head"
    assert "tenant.downgraded" not in uow.audit.names()


def scheduled_tenant(grace_days=30, before=TenantStatus.ACTIVE):
    uow = FakeDeletionUnitOfWork()
    tenant = provision(uow)
    if before is TenantStatus.DISABLED:
        tenants.disable_tenant(slug=tenant.slug, reason=DisableReason.ABUSE, now=NOW, uow=uow)
    due = deletion.request_deletion(
        tenant_id=tenant.id, confirm_slug=tenant.slug, grace_days=grace_days, now=NOW, actor=Actor(), uow=uow
    )
    return uow, tenant, due


def test_the_owner_must_type_the_slug_to_schedule_a_deletion():
    uow = FakeDeletionUnitOfWork()
    tenant = provision(uow)
    with pytest.raises((Invalid, Conflict)):
        deletion.request_deletion(
            tenant_id=tenant.id, confirm_slug="wrong", grace_days=30, now=NOW, actor=Actor(), uow=uow
        )
    assert uow.tenants.get(tenant.id).status is TenantStatus.ACTIVE


def test_a_second_request_keeps_the_first_due_date():
    uow, tenant, due = scheduled_tenant()
    later = NOW + timedelta(days=3)
    again = deletion.request_deletion(
        tenant_id=tenant.id, confirm_slug=tenant.slug, grace_days=30, now=later, actor=Actor(), uow=uow
    )
    assert again == due == NOW + timedelta(days=30)
    assert uow.audit.names().count("tenant.deletion_scheduled") == 1


def test_cancelling_returns_a_disabled_tenant_to_disabled_and_is_audited():
    uow, tenant, _ = scheduled_tenant(before=TenantStatus.DISABLED)
    deletion.cancel_deletion(tenant_id=tenant.id, now=NOW + timedelta(days=1), actor=Actor(), uow=uow)
    assert uow.tenants.get(tenant.id).status is TenantStatus.DISABLED
    assert uow.audit.names()[-1] == "tenant.deletion_cancelled"


def test_an_operator_can_make_a_scheduled_deletion_due_now_but_not_later():
    uow, tenant, _ = scheduled_tenant()
    sooner = deletion.schedule_deletion(slug=tenant.slug, grace_days=0, now=NOW, actor=Actor(), uow=uow)
    assert sooner.deletion_due_at == NOW
    later = deletion.schedule_deletion(slug=tenant.slug, grace_days=60, now=NOW, actor=Actor(), uow=uow)
    assert later.deletion_due_at == NOW
    assert [t.id for t in deletion.due_deletions(now=NOW, uow=uow)] == [tenant.id]


def test_a_wrong_confirmation_is_invalid_and_an_unknown_or_purged_tenant_not_found():
    uow = FakeDeletionUnitOfWork()
    tenant = provision(uow)
    with pytest.raises(Invalid) as wrong:
        deletion.request_deletion(
            tenant_id=tenant.id, confirm_slug="ACME", grace_days=30, now=NOW, actor=Actor(), uow=uow
        )
    assert "confirm_slug" in wrong.value.errors
    with pytest.raises(NotFound):
        deletion.request_deletion(
            tenant_id=uuid.uuid4(), confirm_slug="acme", grace_days=30, now=NOW, actor=Actor(), uow=uow
        )
    uow.tenants.rows[tenant.id] = replace(tenant, status=TenantStatus.DELETED)
    with pytest.raises(NotFound):
        deletion.request_deletion(
            tenant_id=tenant.id, confirm_slug="acme", grace_days=30, now=NOW, actor=Actor(), uow=uow
        )
    with pytest.raises(NotFound):
        deletion.schedule_deletion(slug="ghost", grace_days=0, now=NOW, actor=Actor(), uow=uow)
    assert "tenant.deletion_scheduled" not in uow.audit.names()


def test_a_scheduled_deletion_is_audited_with_its_grace_and_who_asked():
    uow, tenant, due = scheduled_tenant(grace_days=7)
    assert due == NOW + timedelta(days=7) and uow.tenants.get(tenant.id).deletion_due_at == due
    [fields] = [f for e, f in uow.audit.events if e == "tenant.deletion_scheduled"]
    assert fields["metadata"] == {"grace_days": 7} and fields["target_id"] == str(tenant.id)
    assert fields["actor_role"] == "operator"


def test_a_deletion_cannot_be_cancelled_once_due_or_when_none_is_scheduled():
    uow, tenant, due = scheduled_tenant()
    with pytest.raises(Conflict) as too_late:
        deletion.cancel_deletion(tenant_id=tenant.id, now=due, actor=Actor(), uow=uow)
    assert too_late.value.code == "deletion_in_progress"
    assert uow.tenants.get(tenant.id).status is TenantStatus.DELETION_SCHEDULED
    deletion.cancel_deletion(tenant_id=tenant.id, now=NOW, actor=Actor(), uow=uow)
    assert uow.tenants.get(tenant.id).status is TenantStatus.ACTIVE
    assert uow.tenants.get(tenant.id).deletion_due_at is None
    with pytest.raises(NotFound):
        deletion.cancel_deletion(tenant_id=tenant.id, now=NOW, actor=Actor(), uow=uow)
    assert uow.audit.names().count("tenant.deletion_cancelled") == 1
