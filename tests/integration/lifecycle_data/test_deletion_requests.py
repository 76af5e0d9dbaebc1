"""The owner requests and cancels the workspace's deletion through the API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from backend.domain.lifecycle import Actor
from backend.infrastructure.sql.deletion import SqlDeletionUnitOfWork
from backend.infrastructure.sql.tenants import tenants
from backend.service import deletion
from tests.integration.lifecycle_data.conftest import audit_events_of, registry_row
from tests.owner import owner_engine

URL = "/api/v1/tenant/deletion"


def test_wrong_confirmation_is_refused_and_changes_nothing(client, make_tenant, worker_token, owner):
    tenant = make_tenant()
    response = client.post(URL, json={"confirm_slug": "not-" + tenant.slug}, headers=worker_token(tenant))
    assert response.status_code == 422
    assert response.json["detail"] == "validation_error"
    assert "confirm_slug" in response.json["errors"]
    assert registry_row(owner, tenant.id)["status"] == "active"


def test_unknown_fields_are_refused(client, make_tenant, worker_token):
    tenant = make_tenant()
    body = {"confirm_slug": tenant.slug, "deletion_due_at": "2000-01-01T00:00:00Z"}
    response = client.post(URL, json=body, headers=worker_token(tenant))
    assert response.status_code == 422


def test_owner_schedules_deletion_with_the_grace_period(client, make_tenant, worker_token, owner, settings):
    tenant, bystander = make_tenant(), make_tenant()
    before = datetime.now(UTC)
    response = client.post(URL, json={"confirm_slug": tenant.slug}, headers=worker_token(tenant))
    assert response.status_code == 202, response.json
    due = datetime.fromisoformat(response.json["deletion_due_at"])
    grace = timedelta(days=settings.deletion_grace_days)
    assert before + grace <= due <= datetime.now(UTC) + grace
    row = registry_row(owner, tenant.id)
    assert row["status"] == "deletion_scheduled"
    assert row["deletion_due_at"] == due
    assert row["deletion_previous_status"] == "active"
    assert ("tenant.deletion_scheduled", "success") in audit_events_of(owner, tenant.id)
    # Another tenant is untouched.
    assert registry_row(owner, bystander.id)["status"] == "active"
    assert registry_row(owner, bystander.id)["deletion_due_at"] is None


def test_requesting_again_is_blocked_and_keeps_the_due_date(client, make_tenant, worker_token, owner):
    """Once scheduled, the tenant is blocked (`tenant_deleted`) except for export and cancel."""
    tenant = make_tenant()
    first = client.post(URL, json={"confirm_slug": tenant.slug}, headers=worker_token(tenant))
    client.application.extensions["saas"].access_cache.forget()
    second = client.post(URL, json={"confirm_slug": tenant.slug}, headers=worker_token(tenant))
    assert second.status_code == 403
    assert second.json == {"detail": "tenant_deleted"}
    assert registry_row(owner, tenant.id)["deletion_due_at"].isoformat() == first.json["deletion_due_at"]


def test_clients_cannot_request_or_cancel_a_deletion(client, make_tenant, client_token, owner):
    tenant = make_tenant()
    _, headers = client_token(tenant)
    assert client.post(URL, json={"confirm_slug": tenant.slug}, headers=headers).status_code == 403
    assert client.delete(URL, headers=headers).status_code == 403
    assert registry_row(owner, tenant.id)["status"] == "active"


def test_owner_cancels_during_the_grace_period(client, make_tenant, worker_token, owner):
    tenant = make_tenant()
    client.post(URL, json={"confirm_slug": tenant.slug}, headers=worker_token(tenant))
    response = client.delete(URL, headers=worker_token(tenant))
    assert response.status_code == 204
    row = registry_row(owner, tenant.id)
    assert (row["status"], row["deletion_due_at"], row["deletion_previous_status"]) == ("active", None, None)
    assert ("tenant.deletion_cancelled", "success") in audit_events_of(owner, tenant.id)
    again = client.delete(URL, headers=worker_token(tenant))
    assert again.status_code == 404
    assert again.json == {"detail": "not_found", "message": "no deletion is scheduled"}


def test_cancelling_returns_a_disabled_tenant_to_disabled(client, make_tenant, worker_token, owner, runtime):
    tenant = make_tenant()
    with owner.begin() as connection:
        connection.execute(update(tenants).where(tenants.c.id == tenant.id).values(status="disabled"))
    deletion.schedule_deletion(
        slug=tenant.slug,
        grace_days=30,
        now=datetime.now(UTC),
        actor=Actor(),
        uow=SqlDeletionUnitOfWork(owner_engine()),
    )
    assert registry_row(owner, tenant.id)["deletion_previous_status"] == "disabled"
    assert client.delete(URL, headers=worker_token(tenant)).status_code == 204
    assert registry_row(owner, tenant.id)["status"] == "disabled"


def test_no_cancel_once_the_grace_period_is_over(client, make_tenant, worker_token, owner, runtime):
    tenant = make_tenant()
    deletion.schedule_deletion(
        slug=tenant.slug,
        grace_days=0,
        now=datetime.now(UTC),
        actor=Actor(),
        uow=SqlDeletionUnitOfWork(owner_engine()),
    )
    response = client.delete(URL, headers=worker_token(tenant))
    assert response.status_code == 409
    assert response.json["detail"] == "deletion_in_progress"
    assert registry_row(owner, tenant.id)["status"] == "deletion_scheduled"


def test_operator_now_shortens_an_earlier_schedule(make_tenant, owner, runtime):
    tenant = make_tenant()
    now = datetime.now(UTC)
    uow = lambda: SqlDeletionUnitOfWork(owner_engine())  # noqa: E731
    deletion.schedule_deletion(slug=tenant.slug, grace_days=30, now=now, actor=Actor(), uow=uow())
    later = deletion.schedule_deletion(slug=tenant.slug, grace_days=60, now=now, actor=Actor(), uow=uow())
    assert later.deletion_due_at == now + timedelta(days=30)
    at_once = deletion.schedule_deletion(slug=tenant.slug, grace_days=0, now=now, actor=Actor(), uow=uow())
    assert at_once.deletion_due_at == now
    row = registry_row(owner, tenant.id)
    assert row["deletion_due_at"] == now
    assert row["deletion_previous_status"] == "active"
