"""`tenants` operator commands: each prints what it did and exits non-zero with a one-line
reason on failure."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from backend.domain.errors import DomainError
from backend.domain.tenants import TenantStatus
from backend.infrastructure import migrations
from backend.infrastructure.sql.privileges import grant_shared
from backend.infrastructure.sql.unit_of_work import RegistryUnitOfWork
from backend.service import tenants as service


def _runtime():
    return current_app.extensions["saas"]


def owner_uow() -> RegistryUnitOfWork:
    rt = _runtime()
    return RegistryUnitOfWork(rt.owner_engine, rt.runtime_role)


def fail(message: str) -> None:
    raise click.ClickException(message)


@click.group("tenants")
def tenants_cli() -> None:
    """Provision, list and migrate tenants."""


@tenants_cli.command("provision")
@click.option("--slug", required=True)
@click.option("--name", required=True)
@click.option("--owner-email", required=True)
@with_appcontext
def provision(slug: str, name: str, owner_email: str) -> None:
    """Create a tenant: registry row, schema at head, owner membership."""
    try:
        tenant = service.provision_tenant(
            slug=slug,
            name=name,
            owner_email=owner_email,
            trial_days=_runtime().settings.trial_days,
            now=datetime.now(UTC),
            uow=owner_uow(),
        )
    except DomainError as error:
        fail(f"{error.code}: {getattr(error, 'errors', '') or error.message or slug}")
    click.echo(
        f"provisioned {tenant.slug} ({tenant.id}) schema {tenant.schema_name} at {tenant.schema_version}"
    )


@tenants_cli.command("list")
@click.option("--status", type=click.Choice([s.value for s in TenantStatus]))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@with_appcontext
def list_(status: str | None, fmt: str) -> None:
    """List tenants with their status and schema version."""
    items = service.list_tenants(status=TenantStatus(status) if status else None, uow=owner_uow())
    if fmt == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "id": str(t.id),
                        "slug": t.slug,
                        "status": t.status.value,
                        "schema_name": t.schema_name,
                        "schema_version": t.schema_version,
                        "last_migration_error": t.last_migration_error,
                    }
                    for t in items
                ],
                indent=2,
            )
        )
        return
    click.echo(f"{'slug':<40} {'status':<20} {'version':<10} id")
    for t in items:
        click.echo(f"{t.slug:<40} {t.status.value:<20} {t.schema_version or '-':<10} {t.id}")


def migrate_shared() -> str:
    rt = _runtime()
    with rt.owner_engine.begin() as connection:
        migrations.upgrade_shared(connection)
        grant_shared(connection, rt.runtime_role)
    return migrations.head_revision("shared")


@tenants_cli.command("migrate")
@click.option("--slug", help="Only this tenant")
@with_appcontext
def migrate(slug: str | None) -> None:
    """Upgrade the shared schema, then every tenant (or one) to head."""
    click.echo(f"shared schema at {migrate_shared()}")
    head = migrations.head_revision("tenant")
    with owner_uow() as uow:
        total = len(uow.tenants.list())
    failed = []
    done = 0
    with click.progressbar(length=total, label="tenants", show_pos=True) as bar:
        for result in service.migrate_tenants(uow_factory=owner_uow, head=head, slug=slug):
            done += 1
            bar.update(1)
            if not result.ok:
                failed.append(result)
    for result in failed:
        click.echo(f"FAILED {result.slug}: {result.error}", err=True)
    click.echo(f"tenants at {head}: {done - len(failed)} ok, {len(failed)} failed")
    if failed:
        fail(f"{len(failed)} tenant(s) failed to migrate")
