"""Fixtures of the proof suite: workspaces provisioned once per module and filled with
marked data through the API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from tests.conftest import unique_slug, verify_owner
from tests.integration.proof.seed import seed_workspace


def provision(runtime, label: str):
    from backend.infrastructure.sql.unit_of_work import RegistryUnitOfWork
    from backend.service.tenants import provision_tenant

    slug = unique_slug(label)
    tenant = provision_tenant(
        slug=slug,
        name=f"Workspace {slug}",
        owner_email=f"owner-{slug}@example.com",
        trial_days=14,
        now=datetime.now(UTC),
        uow=RegistryUnitOfWork(runtime.owner_engine, runtime.runtime_role),
    )
    verify_owner(runtime, tenant)
    return tenant


def owner_headers(runtime, tenant) -> dict:
    from backend.infrastructure.sql.identity import memberships

    with runtime.owner_engine.connect() as connection:
        user_id = connection.execute(
            select(memberships.c.user_id).where(
                memberships.c.tenant_id == tenant.id, memberships.c.role == "worker"
            )
        ).scalar_one()
    value = runtime.tokens.issue(user_id=user_id, tenant_id=tenant.id, role="worker")
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture(scope="module")
def seeded(app, runtime):
    """Factory: a new workspace, provisioned and filled with marked data."""
    http = app.test_client()

    def make(label: str, **kwargs):
        tenant = provision(runtime, label)
        return seed_workspace(http, runtime, tenant, owner_headers(runtime, tenant), tag=label, **kwargs)

    return make
