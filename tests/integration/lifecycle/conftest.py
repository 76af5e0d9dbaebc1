"""Fixtures for the tenant lifecycle tests: temporary migration trees and retiring the
tenants a test moved to a revision the repository does not have."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from psycopg import sql
from sqlalchemy import update
from sqlalchemy.engine import Connection

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))

from bench.trees import add_revision, copy_tree  # noqa: E402

from backend.infrastructure.fleet import RegistryUowFactory, preload_workers  # noqa: E402
from backend.infrastructure.spares import SparePool  # noqa: E402
from backend.infrastructure.sql.schemas import SqlSchemaManager  # noqa: E402
from backend.infrastructure.sql.tenants import tenants  # noqa: E402
from tests.owner import owner_engine  # noqa: E402

__all__ = ["add_revision", "in_schema"]


def in_schema(connection: Connection, statement: str, schema: str):
    """Run `statement` with `{schema}` replaced by the quoted schema identifier."""
    query = sql.SQL(statement).format(schema=sql.Identifier(schema))
    return connection.exec_driver_sql(query.as_string(None))


@pytest.fixture()
def tenant_tree(tmp_path) -> Path:
    """A private copy of tenant_migrations to add revisions to."""
    return copy_tree(tmp_path / "tenant_migrations")


@pytest.fixture()
def retire(runtime):
    """Tenants handed to it are dropped and marked deleted after the test, so that later
    fleet-wide runs (with the repository's tree) never meet their temporary revisions."""
    retired: list = []
    yield retired.extend
    with owner_engine().begin() as connection:
        for tenant in retired:
            SqlSchemaManager(connection, None).drop(tenant.schema_name)
            connection.execute(
                update(tenants)
                .where(tenants.c.id == tenant.id)
                .values(status="deleted", name="", slug=f"deleted-{tenant.id.hex}")
            )


@pytest.fixture()
def factory(runtime, settings):
    """Returns the unit-of-work factory a migrate run uses, for the tree in use when called:
    picklable, so worker processes (jobs > 1) build their own engine from it."""
    preload_workers()
    return lambda: RegistryUowFactory.for_current_tree(settings.owner_database_url, runtime.runtime_role)


@pytest.fixture()
def spare_pool(runtime):
    """A pool of 2 spare schemas for this test (built by the test); every spare, whatever its
    revision, is dropped afterwards, so no other test meets one."""
    pool = SparePool(owner_engine(), runtime.runtime_role, 2)
    pool.refill(target=0, shrink=True, drop_stale=True)  # whatever an earlier test left
    yield pool
    pool.refill(target=0, shrink=True, drop_stale=True)
