"""Provisioning: one transaction, retryable, schema at head with every tenant table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import text

from backend.domain.errors import Conflict, Invalid
from backend.infrastructure.migrations import head_revision
from backend.infrastructure.sql import tenant_metadata
from backend.infrastructure.sql.schemas import SqlSchemaManager
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service.tenants import provision_tenant
from tests.conftest import unique_slug
from tests.owner import owner_engine


def _provision(runtime, slug):
    return provision_tenant(
        slug=slug,
        name="Acme",
        owner_email=f"owner-{slug}@example.com",
        trial_days=14,
        now=datetime.now(UTC),
        uow=SqlRegistryUnitOfWork(owner_engine(), runtime.runtime_role),
    )


def _schema_exists(runtime, schema_name) -> bool:
    with owner_engine().connect() as connection:
        return bool(
            connection.execute(
                text("SELECT 1 FROM pg_namespace WHERE nspname = :n"), {"n": schema_name}
            ).scalar()
        )


def _registry_has(runtime, slug) -> bool:
    with owner_engine().connect() as connection:
        return bool(
            connection.execute(text("SELECT 1 FROM shared.tenants WHERE slug = :s"), {"s": slug}).scalar()
        )


def test_creates_schema_with_every_tenant_table_at_head(runtime):
    tenant = _provision(runtime, unique_slug())
    with owner_engine().connect() as connection:
        tables = set(
            connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": tenant.schema_name}
            ).scalars()
        )
        version = connection.execute(
            text(f'SELECT version_num FROM "{tenant.schema_name}".alembic_version')
        ).scalar_one()
    assert tables == set(tenant_metadata.tables) | {"alembic_version"}
    assert version == head_revision("tenant") == tenant.schema_version


def test_failure_after_schema_creation_leaves_nothing_and_retry_succeeds(runtime, monkeypatch):
    slug = unique_slug()
    created: list[str] = []
    original_create = SqlSchemaManager.create

    def create_then_crash(self, schema_name):
        original_create(self, schema_name)
        created.append(schema_name)
        raise RuntimeError("injected failure after the schema was created")

    monkeypatch.setattr(SqlSchemaManager, "create", create_then_crash)
    with pytest.raises(RuntimeError, match="injected"):
        _provision(runtime, slug)
    monkeypatch.undo()

    assert created, "the failure was injected after CREATE SCHEMA"
    assert not _schema_exists(runtime, created[0])
    assert not _registry_has(runtime, slug)

    tenant = _provision(runtime, slug)
    assert _schema_exists(runtime, tenant.schema_name)
    assert _registry_has(runtime, slug)


def test_slug_taken(runtime):
    slug = unique_slug()
    _provision(runtime, slug)
    with pytest.raises(Conflict) as error:
        _provision(runtime, slug)
    assert error.value.code == "slug_taken"


@pytest.mark.parametrize(
    "slug",
    ["ab", "a" * 41, "Acme", "acme_co", "-acme", "acme-", "ac--me", "admin", "pg-stuff", "a.b", "a'b", ""],
)
def test_bad_slugs_are_refused_before_any_sql(runtime, slug):
    with pytest.raises(Invalid) as error:
        _provision(runtime, slug)
    assert "slug" in error.value.errors
