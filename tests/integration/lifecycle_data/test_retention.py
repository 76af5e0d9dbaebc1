"""`tenants purge` applies every retention rule; `--dry-run` reports the same and changes nothing."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text

from backend.core.db import tenant_scope
from backend.domain.lifecycle import Actor
from backend.infrastructure.sql.deletion import SqlDeletionUnitOfWork
from backend.infrastructure.sql.media import media
from backend.infrastructure.sql.unit_of_work import SqlTenantUnitOfWork
from backend.service import deletion
from tests.integration.domain.conftest import API, upload
from tests.integration.lifecycle_data.conftest import audit_events_of, registry_row, schema_exists
from tests.owner import owner_engine


def media_items(client, runtime, tenant, headers, deleted_ats) -> list[str]:
    """Media uploaded through the API (row and file), then soft-deleted at the given instants
    through the media repository, noted in the registry's scheduled work as the media service
    does (None: left live); their ids."""
    person = client.post(f"{API}/clients", json={"name": "C"}, headers=headers)
    assert person.status_code == 201, person.json
    ids = []
    for deleted_at in deleted_ats:
        response = upload(client, headers, client_id=person.json["id"])
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
        if deleted_at is not None:
            with SqlTenantUnitOfWork(owner_engine(), tenant.schema_name) as uow:
                assert uow.media.soft_delete(uuid.UUID(ids[-1]), deleted_at)
                uow.media_trash.trashed(deleted_at)
                uow.commit()
    return ids


def media_ids_in_db(owner, tenant) -> set[str]:
    with tenant_scope(owner, tenant.schema_name) as connection:
        return {str(i) for i in connection.execute(select(media.c.id)).scalars()}


def media_files(settings, tenant) -> list[str]:
    return sorted(p.name for p in (settings.media_dir / str(tenant.id)).iterdir())


def old_audit_event(owner, tenant_id, days_ago: int) -> int:
    with owner.begin() as connection:
        return connection.execute(
            text(
                "INSERT INTO shared.audit_events (occurred_at, tenant_id, event)"
                " VALUES (now() - make_interval(days => :days), :t, 'test.old') RETURNING id"
            ),
            {"days": days_ago, "t": tenant_id},
        ).scalar_one()


def audit_ids(owner, ids) -> set[int]:
    with owner.connect() as connection:
        return set(
            connection.execute(
                text("SELECT id FROM shared.audit_events WHERE id = ANY(:ids)"), {"ids": list(ids)}
            ).scalars()
        )


def aged_file(path, days: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"archive")
    stamp = (datetime.now(UTC) - timedelta(days=days)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def test_dry_run_shows_everything_and_changes_nothing_then_purge_applies_it(
    app, client, runtime, owner, make_tenant, worker_token, settings
):
    now = datetime.now(UTC)
    keeper, doomed = make_tenant(), make_tenant()
    old, recent, live = media_items(
        client,
        runtime,
        keeper,
        worker_token(keeper),
        [now - timedelta(days=settings.media_retention_days + 5), now - timedelta(days=1), None],
    )
    old_event = old_audit_event(owner, keeper.id, settings.audit_retention_days + 10)
    recent_event = old_audit_event(owner, keeper.id, 3)
    old_export = aged_file(
        settings.exports_dir / f"old-{keeper.slug}.tar", settings.export_retention_days + 1
    )
    new_export = aged_file(settings.exports_dir / f"new-{keeper.slug}.tar", 1)
    deletion.schedule_deletion(
        slug=doomed.slug, grace_days=0, now=now, actor=Actor(), uow=SqlDeletionUnitOfWork(owner)
    )

    def state():
        return (
            media_ids_in_db(owner, keeper),
            media_files(settings, keeper),
            audit_ids(owner, [old_event, recent_event]),
            old_export.exists(),
            new_export.exists(),
            registry_row(owner, doomed.id)["status"],
            schema_exists(owner, doomed.schema_name),
        )

    before = state()
    assert before[:2] == ({old, recent, live}, sorted([old, recent, live]))
    dry = app.test_cli_runner().invoke(args=["tenants", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "DRY RUN" in dry.output
    assert str(doomed.id) in dry.output
    assert f"{keeper.id}: 1" in dry.output
    assert str(old_export) in dry.output and str(new_export) not in dry.output
    assert state() == before

    done = app.test_cli_runner().invoke(args=["tenants", "purge"])
    assert done.exit_code == 0, done.output
    assert media_ids_in_db(owner, keeper) == {recent, live}
    assert media_files(settings, keeper) == sorted([recent, live])
    assert audit_ids(owner, [old_event, recent_event]) == {recent_event}
    assert not old_export.exists() and new_export.exists()
    assert registry_row(owner, doomed.id)["status"] == "deleted"
    assert not schema_exists(owner, doomed.schema_name)
    assert ("media.purged", "success") in audit_events_of(owner, keeper.id)
    with owner.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM shared.audit_events WHERE event = 'retention.applied'")
            ).scalar_one()
            >= 1
        )


def test_a_file_already_gone_does_not_stop_the_purge_of_its_row(
    app, client, runtime, owner, make_tenant, worker_token, settings
):
    """A purge that crashed after removing a file but before removing its row is finished by
    the next run; another tenant's media are left alone."""
    tenant, bystander = make_tenant(), make_tenant()
    expired = datetime.now(UTC) - timedelta(days=settings.media_retention_days + 1)
    crashed, pending = media_items(client, runtime, tenant, worker_token(tenant), [expired, expired])
    (settings.media_dir / str(tenant.id) / crashed).unlink()  # its file went, its row stayed
    (untouched,) = media_items(client, runtime, bystander, worker_token(bystander), [None])

    dry = app.test_cli_runner().invoke(args=["tenants", "purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert f"{tenant.id}: 2" in dry.output
    assert media_ids_in_db(owner, tenant) == {crashed, pending}
    assert media_files(settings, tenant) == [pending]

    done = app.test_cli_runner().invoke(args=["tenants", "purge"])
    assert done.exit_code == 0, done.output
    assert f"{tenant.id}: 2" in done.output and "FAILED" not in done.output
    assert media_ids_in_db(owner, tenant) == set()
    assert media_files(settings, tenant) == []
    assert ("media.purged", "success") in audit_events_of(owner, tenant.id)
    assert media_ids_in_db(owner, bystander) == {untouched}
    assert media_files(settings, bystander) == [untouched]
    assert str(bystander.id) not in done.output
