"""`tenants purge` applies every retention rule; `--dry-run` reports the same and changes nothing."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

from psycopg import sql
from sqlalchemy import text

from backend.core.db import set_tenant_search_path
from backend.domain.lifecycle import Actor
from backend.infrastructure.sql.deletion import DeletionUnitOfWork
from backend.infrastructure.sql.privileges import grant_tenant
from backend.service import deletion
from tests.integration.lifecycle_data.conftest import (
    audit_events_of,
    registry_row,
    schema_exists,
    write_media,
)

# Values for the NOT NULL columns the media table of the media area has (when it is there).
MEDIA_DEFAULTS = {
    "filename": "photo.jpg",
    "content_type": "image/jpeg",
    "size_bytes": 3,
    "sha256": "0" * 64,
    "uploaded_by": uuid.uuid4(),
    "uploaded_by_role": "worker",
}


def media_rows(runtime, tenant, deleted_ats) -> list[str]:
    """Media rows in the contract's shape (`id`, `deleted_at`), each with its file."""
    names = []
    with runtime.owner_engine.begin() as connection:
        create = sql.SQL("CREATE TABLE IF NOT EXISTS {} (id uuid PRIMARY KEY, deleted_at timestamptz)")
        connection.exec_driver_sql(create.format(sql.Identifier(tenant.schema_name, "media")).as_string(None))
        grant_tenant(connection, tenant.schema_name, runtime.runtime_role)
        columns = set(
            connection.execute(
                text(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = :s AND table_name = 'media'"
                ),
                {"s": tenant.schema_name},
            ).scalars()
        )
        extra = {k: v for k, v in MEDIA_DEFAULTS.items() if k in columns}
        set_tenant_search_path(connection, tenant.schema_name)
        client_id = None
        if "client_id" in columns:  # the media area's rule: live media belong to a client
            client_id = uuid.uuid4()
            connection.execute(text("INSERT INTO clients (id, name) VALUES (:id, 'C')"), {"id": client_id})
        for deleted_at in deleted_ats:
            media_id = uuid.uuid4()
            values = {"id": media_id, "deleted_at": deleted_at, **extra}
            if client_id is not None and deleted_at is None:
                values["client_id"] = client_id
            statement = sql.SQL("INSERT INTO media ({}) VALUES ({})").format(
                sql.SQL(", ").join(map(sql.Identifier, values)),
                sql.SQL(", ").join(sql.Placeholder(k) for k in values),
            )
            connection.exec_driver_sql(statement.as_string(None), values)
            names.append(str(media_id))
    return names


def media_ids_in_db(owner, tenant) -> set[str]:
    with owner.connect() as connection:
        set_tenant_search_path(connection, tenant.schema_name)
        ids = {str(i) for i in connection.execute(text("SELECT id FROM media")).scalars()}
        connection.rollback()
    return ids


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
    app, runtime, owner, make_tenant, settings
):
    now = datetime.now(UTC)
    keeper, doomed = make_tenant(), make_tenant()
    old, recent, live = media_rows(
        runtime,
        keeper,
        [now - timedelta(days=settings.media_retention_days + 5), now - timedelta(days=1), None],
    )
    for name in (old, recent, live):
        write_media(settings.media_dir, keeper, name, b"abc")
    old_event = old_audit_event(owner, keeper.id, settings.audit_retention_days + 10)
    recent_event = old_audit_event(owner, keeper.id, 3)
    old_export = aged_file(
        settings.exports_dir / f"old-{keeper.slug}.tar", settings.export_retention_days + 1
    )
    new_export = aged_file(settings.exports_dir / f"new-{keeper.slug}.tar", 1)
    deletion.schedule_deletion(
        slug=doomed.slug, grace_days=0, now=now, actor=Actor(), uow=DeletionUnitOfWork(owner)
    )

    def state():
        return (
            media_ids_in_db(owner, keeper),
            sorted(p.name for p in (settings.media_dir / str(keeper.id)).iterdir()),
            audit_ids(owner, [old_event, recent_event]),
            old_export.exists(),
            new_export.exists(),
            registry_row(owner, doomed.id)["status"],
            schema_exists(owner, doomed.schema_name),
        )

    before = state()
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
    assert sorted(p.name for p in (settings.media_dir / str(keeper.id)).iterdir()) == sorted([recent, live])
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


def test_tenants_without_a_media_table_are_skipped(app, runtime, owner, make_tenant):
    tenant = make_tenant()
    with owner.begin() as connection:
        connection.exec_driver_sql(
            sql.SQL("DROP TABLE IF EXISTS {} CASCADE")
            .format(sql.Identifier(tenant.schema_name, "media"))
            .as_string(None)
        )
    result = app.test_cli_runner().invoke(args=["tenants", "purge"])
    assert result.exit_code == 0, result.output
    assert str(tenant.id) not in result.output
