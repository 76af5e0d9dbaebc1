"""Operator commands killed (SIGKILL) in the middle of their work, then run again: the re-run
finishes, and in between nothing half-made or half-removed is visible (no registry row without
its schema, no schema or tenant role without its registry row, no half-restored tenant).

Each victim is stopped at a known point: it blocks behind a lock this test holds on a table it
needs halfway through (killing.py), is killed there, and its backend rolls back."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text

from backend.core.tenancy import quoted_schema
from backend.infrastructure import migrations
from backend.infrastructure.sql.identity import memberships, users
from backend.infrastructure.sql.tenants import SqlTenantRepository, tenants
from tests.conftest import unique_slug
from tests.integration.faults.killing import kill_when_blocked, orphans, run_cli
from tests.integration.proof.seed import png_with_text, upload
from tests.owner import owner_engine

pytestmark = pytest.mark.slow
API = "/api/v1"
KILLED = -signal.SIGKILL


def registry_row(runtime, slug: str | None = None, tenant_id=None):
    where = tenants.c.slug == slug if slug is not None else tenants.c.id == tenant_id
    with owner_engine().connect() as connection:
        return connection.execute(select(tenants).where(where)).first()


def schema_exists(runtime, schema: str) -> bool:
    with owner_engine().connect() as connection:
        found = connection.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :n"), {"n": schema})
        return found.scalar() == 1


def filled(client, tenant, headers) -> dict:
    """A client and a file in the workspace, through the API."""
    person = client.post(f"{API}/clients", json={"name": "Kept"}, headers=headers).json
    stored = upload(client, headers, png_with_text("kept"), "kept.png", client_id=person["id"])
    assert stored.status_code == 201
    return person


def test_provisioning_killed_leaves_nothing_and_the_rerun_provisions(settings, runtime, client, worker_token):
    before = orphans(owner_engine())
    slug = unique_slug("killprov")
    args = ("provision", "--slug", slug, "--name", "Killed", "--owner-email", f"{slug}@example.com")
    # Registry row, schema, tables and tenant role are made; the owner's membership is next.
    killed = kill_when_blocked(settings, owner_engine(), "shared.memberships", "SHARE", *args)
    assert killed.returncode == KILLED and killed.created > 0
    assert registry_row(runtime, slug) is None
    with owner_engine().connect() as connection:
        owner = select(users.c.id).where(users.c.email == f"{slug}@example.com")
        assert connection.execute(owner).first() is None
    assert orphans(owner_engine()) == before

    again = run_cli(settings, *args)
    assert again.returncode == 0, again.stderr
    row = registry_row(runtime, slug)
    assert row.status == "active" and row.schema_version == migrations.head_revision("tenant")
    assert schema_exists(runtime, row.schema_name)
    assert orphans(owner_engine()) == before


def test_purge_killed_while_dropping_the_schema_then_the_rerun_finishes(
    settings, runtime, client, make_tenant, worker_token
):
    tenant = make_tenant()
    headers = worker_token(tenant)
    filled(client, tenant, headers)
    before = orphans(owner_engine())
    media_dir = settings.media_dir / str(tenant.id)
    assert any(media_dir.iterdir())
    clients_table = f"{quoted_schema(tenant.schema_name)}.clients"
    # Scheduled (committed), tokens revoked (committed), then DROP SCHEMA waits for our lock.
    killed = kill_when_blocked(
        settings,
        owner_engine(),
        clients_table,
        "ACCESS SHARE",
        "delete",
        "--slug",
        tenant.slug,
        "--now",
    )
    assert killed.returncode == KILLED
    row = registry_row(runtime, tenant.slug)
    assert row.status == "deletion_scheduled"  # blocked for everyone: nothing half-removed shows
    assert schema_exists(runtime, tenant.schema_name) and any(media_dir.iterdir())
    assert orphans(owner_engine()) == before
    runtime.access_cache.forget()
    blocked = client.get(f"{API}/clients", headers=headers)
    assert blocked.status_code == 403 and blocked.json["detail"] == "tenant_deleted"

    again = run_cli(settings, "delete", "--slug", tenant.slug, "--now")
    assert again.returncode == 0, again.stderr
    assert "purged" in again.stdout
    row = registry_row(runtime, tenant_id=tenant.id)
    assert row.status == "deleted"  # the tombstone
    assert not schema_exists(runtime, tenant.schema_name)
    assert not media_dir.exists() or not any(media_dir.iterdir())
    with owner_engine().connect() as connection:
        left = connection.execute(select(memberships.c.id).where(memberships.c.tenant_id == tenant.id))
        assert left.first() is None
    assert orphans(owner_engine()) == before


def test_restore_killed_leaves_nothing_restored_and_the_rerun_restores(
    settings, runtime, client, make_tenant, worker_token, tmp_path
):
    tenant = make_tenant()
    person = filled(client, tenant, worker_token(tenant))
    archive = tmp_path / "tenant.tar"
    exported = run_cli(settings, "export", "--slug", tenant.slug, "--out", str(archive))
    assert exported.returncode == 0, exported.stderr
    before = orphans(owner_engine())
    media_before = set(settings.media_dir.iterdir())
    slug = unique_slug("restored")
    # Schema loaded and migrated, users matched; the memberships are next, the files after them.
    killed = kill_when_blocked(
        settings,
        owner_engine(),
        "shared.memberships",
        "SHARE",
        "restore",
        "--file",
        str(archive),
        "--slug",
        slug,
    )
    assert killed.returncode == KILLED and killed.created > 0
    assert registry_row(runtime, slug) is None
    assert orphans(owner_engine()) == before
    assert set(settings.media_dir.iterdir()) == media_before

    again = run_cli(settings, "restore", "--file", str(archive), "--slug", slug)
    assert again.returncode == 0, again.stderr
    restored = registry_row(runtime, slug)
    assert restored.status == "active" and schema_exists(runtime, restored.schema_name)
    headers = worker_token(SimpleNamespace(id=restored.id))
    names = [c["name"] for c in client.get(f"{API}/clients", headers=headers).json]
    assert names == [person["name"]]
    media = client.get(f"{API}/media", headers=headers).json
    assert len(media) == 1
    assert client.get(f"{API}/media/{media[0]['id']}/content", headers=headers).status_code == 200


def test_migration_killed_midway_rolls_back_and_the_rerun_migrates(
    settings, runtime, client, make_tenant, worker_token
):
    tenant = make_tenant()
    headers = worker_token(tenant)
    client.post(f"{API}/clients", json={"name": "Stays"}, headers=headers)
    first, head = "t0001", migrations.head_revision("tenant")
    with owner_engine().begin() as connection:  # the tenant is one revision behind
        migrations.downgrade_tenant(connection, tenant.schema_name, first)
        SqlTenantRepository(connection).record_migration(tenant.id, first, None)
    clients_table = f"{quoted_schema(tenant.schema_name)}.clients"
    # The revision's foreign key to `clients` waits for our lock, inside the tenant's transaction.
    killed = kill_when_blocked(
        settings, owner_engine(), clients_table, "SHARE", "migrate", "--slug", tenant.slug
    )
    assert killed.returncode == KILLED and killed.created > 0  # the new tables were made
    with owner_engine().connect() as connection:
        assert migrations.tenant_revision(connection, tenant.schema_name) == first
        connection.rollback()
    assert registry_row(runtime, tenant.slug).schema_version == first  # registry and schema agree

    again = run_cli(settings, "migrate", "--slug", tenant.slug)
    assert again.returncode == 0, again.stderr
    row = registry_row(runtime, tenant.slug)
    assert (row.schema_version, row.last_migration_error) == (head, None)
    runtime.access_cache.forget()
    assert [c["name"] for c in client.get(f"{API}/clients", headers=headers).json] == ["Stays"]
    assert client.get(f"{API}/appointments", headers=headers).status_code == 200
