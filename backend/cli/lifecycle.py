"""Data lifecycle commands: `delete`, `purge`, `export`, `restore` (docs/runbooks/).

Failures (domain rules, pg_dump/pg_restore, archives, files, the database) go through the
group's one-line error (backend/cli/errors.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from backend.cli.owner import owner_access
from backend.cli.tenants import fail, owner_uow, tenants_cli
from backend.domain.lifecycle import OPERATOR, RetentionPolicy
from backend.infrastructure.archives import TarTenantArchiver, open_archive
from backend.infrastructure.sql.deletion import SqlDeletionUnitOfWork
from backend.infrastructure.sql.restore import SqlRestoreUnitOfWork
from backend.infrastructure.sql.retention import SqlRetentionUnitOfWork
from backend.infrastructure.sql.unit_of_work import SqlTenantUnitOfWork
from backend.infrastructure.storage import LocalExportFiles, LocalMediaStorage
from backend.service import deletion, exports, retention


def _rt():
    return current_app.extensions["saas"]


def _deletion_uow() -> SqlDeletionUnitOfWork:
    owner = owner_access()
    return SqlDeletionUnitOfWork(owner.engine, owner.runtime_role)


def _storage() -> LocalMediaStorage:
    return LocalMediaStorage(_rt().settings.media_dir)


def _echo_step(step: str, count: int) -> None:
    click.echo(f"  {step}: {count}")


@tenants_cli.command("delete")
@click.option("--slug", required=True)
@click.option("--now", "at_once", is_flag=True, help="Purge at once instead of after the grace period")
@with_appcontext
def delete(slug: str, at_once: bool) -> None:
    """Schedule a tenant's deletion (access is blocked at once); --now also purges it."""
    settings = _rt().settings
    now = datetime.now(UTC)
    grace = 0 if at_once else settings.deletion_grace_days
    tenant = deletion.schedule_deletion(
        slug=slug, grace_days=grace, now=now, actor=OPERATOR, uow=_deletion_uow()
    )
    click.echo(f"deletion of {slug} ({tenant.id}) due at {tenant.deletion_due_at.isoformat()}")
    if at_once:
        click.echo(f"purging {tenant.id}")
        deletion.purge_tenant(
            tenant_id=tenant.id,
            now=now,
            actor=OPERATOR,
            uow_factory=_deletion_uow,
            storage=_storage(),
            on_step=_echo_step,
        )
        click.echo(f"purged {tenant.id}: tombstone kept, audit trail kept")


@tenants_cli.command("purge")
@click.option("--dry-run", is_flag=True, help="Show what would be removed; change nothing")
@with_appcontext
def purge(dry_run: bool) -> None:
    """Finish due deletions and apply every retention rule (docs/data-lifecycle.md)."""
    rt = _rt()
    owner = owner_access()
    settings = rt.settings
    policy = RetentionPolicy(
        media_days=settings.media_retention_days,
        export_days=settings.export_retention_days,
        audit_days=settings.audit_retention_days,
    )
    report = retention.apply_retention(
        now=datetime.now(UTC),
        policy=policy,
        dry_run=dry_run,
        actor=OPERATOR,
        deletion_uow_factory=_deletion_uow,
        retention_uow_factory=lambda: SqlRetentionUnitOfWork(owner.engine, owner.runtime_role),
        tenant_uow_factory=lambda tenant: SqlTenantUnitOfWork(owner.engine, tenant.schema_name),
        storage=_storage(),
        export_files=LocalExportFiles(settings.exports_dir),
    )
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{'DRY RUN: ' if dry_run else ''}retention applied at {datetime.now(UTC).isoformat()}")
    finished = "to finish" if dry_run else "finished"
    click.echo(f"due tenant deletions {finished}: {len(report.tenants_purged)}")
    for tenant_id in report.tenants_purged:
        click.echo(f"  {tenant_id}")
    click.echo(f"soft-deleted media {verb}: {sum(report.media_removed.values())}")
    for tenant_id, count in report.media_removed.items():
        click.echo(f"  {tenant_id}: {count}")
    click.echo(f"export archives {verb} (older than {settings.export_retention_days} days): "
               f"{len(report.exports_removed)}")  # fmt: skip
    for path in report.exports_removed:
        click.echo(f"  {path}")
    click.echo(f"audit events {verb} (older than {settings.audit_retention_days} days): "
               f"{report.audit_events_removed}")  # fmt: skip
    for failure in report.failures:
        click.echo(f"FAILED {failure}", err=True)
    if report.failures:
        fail(f"{len(report.failures)} retention step(s) failed; re-run to finish")


@tenants_cli.command("export")
@click.option("--slug", required=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
def export(slug: str, out: Path) -> None:
    """Write a restorable archive of one tenant (schema dump, shared rows, media)."""
    rt = _rt()
    archiver = TarTenantArchiver(
        engine=owner_access().engine,
        url=owner_access().url,
        storage=_storage(),
        pg_bin_dir=rt.settings.pg_bin_dir,
    )
    summary = exports.dump_tenant(
        slug=slug, out=out, actor=OPERATOR, uow_factory=owner_uow, archiver=archiver
    )
    click.echo(
        f"exported {slug} to {summary.path}: {summary.bytes} bytes, schema at "
        f"{summary.schema_version}, {summary.media_files} media files"
    )


@tenants_cli.command("restore")
@click.option("--file", "path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--slug", "new_slug", help="Restore as a new tenant with this slug")
@with_appcontext
def restore(path: Path, new_slug: str | None) -> None:
    """Bring an archived tenant back: as itself (after its deletion) or as a new tenant."""
    rt = _rt()
    owner = owner_access()
    settings = rt.settings
    with open_archive(path, storage=_storage(), staging_root=settings.var_dir / "restore") as archive:
        result = exports.restore_tenant(
            archive=archive,
            new_slug=new_slug,
            now=datetime.now(UTC),
            actor=OPERATOR,
            uow_factory=lambda: SqlRestoreUnitOfWork(owner.engine, owner.runtime_role, settings.pg_bin_dir),
        )
    tenant = result.tenant
    click.echo(
        f"restored {tenant.slug} ({tenant.id}) schema {tenant.schema_name} at "
        f"{tenant.schema_version}, status {tenant.status.value}: {result.media_files} media files, "
        f"{result.users_matched} users matched by email, {result.users_created} recreated"
    )
