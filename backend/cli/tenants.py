"""`tenants` operator commands: each prints what it did; a failure is one line and exit code 1,
from the group itself (backend/cli/errors.py): commands let domain and database errors through."""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from backend.cli.errors import OperatorGroup
from backend.cli.owner import owner_access
from backend.cli.spares import refill_after_migrate
from backend.domain.tenants import DisableReason, TenantStatus
from backend.infrastructure import fleet, migrations
from backend.infrastructure.mail import mailer_for
from backend.infrastructure.sql.placement import is_citus, tenant_placements
from backend.infrastructure.sql.privileges import grant_shared, set_default_search_path
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service import identity
from backend.service import tenants as service
from backend.service.identity import mfa as identity_mfa


def _runtime():
    return current_app.extensions["saas"]


def owner_uow(*, spares: bool = False) -> SqlRegistryUnitOfWork:
    owner = owner_access()
    return SqlRegistryUnitOfWork(owner.engine, owner.runtime_role, spares=spares)


def fail(message: str) -> None:
    raise click.ClickException(message)


def lock_timeout_option(help_text: str):
    """`--lock-timeout` (ms) of the commands that change tenant schemas under their table locks."""
    return click.option(
        "--lock-timeout",
        "lock_timeout_ms",
        type=click.IntRange(0),
        default=5000,
        show_default=True,
        help=help_text,
    )


@click.group("tenants", cls=OperatorGroup)
def tenants_cli() -> None:
    """Provision, list, migrate, disable and enable tenants."""


@tenants_cli.command("provision")
@click.option("--slug", required=True)
@click.option("--name", required=True)
@click.option("--owner-email", required=True)
@with_appcontext
def provision(slug: str, name: str, owner_email: str) -> None:
    """Create a tenant: registry row, schema at head, owner membership."""
    tenant = service.provision_tenant(
        slug=slug,
        name=name,
        owner_email=owner_email,
        trial_days=_runtime().settings.trial_days,
        now=datetime.now(UTC),
        uow=owner_uow(spares=_runtime().settings.spare_schemas > 0),
    )
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


@tenants_cli.command("placement")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@with_appcontext
def placement(fmt: str) -> None:
    """On Citus: the worker (HOST:PORT) holding each tenant's schema (docs/scale-out.md)."""
    with owner_access().engine.connect() as connection:
        if not is_citus(connection):
            raise click.ClickException("not a Citus coordinator: every tenant is on this one server")
        rows = tenant_placements(connection)
    if fmt == "json":
        click.echo(json.dumps([{"slug": r.slug, "schema_name": r.schema_name, "node": r.node} for r in rows]))
        return
    click.echo(f"{'slug':<40} node")
    for row in rows:
        click.echo(f"{row.slug:<40} {row.node or '-'}")


def migrate_shared() -> str:
    owner = owner_access()
    with owner.engine.begin() as connection:
        migrations.upgrade_shared(connection)
        grant_shared(connection, owner.runtime_role)
        set_default_search_path(connection)
    return migrations.head_revision("shared")


@tenants_cli.command("migrate")
@click.option("--slug", help="Only this tenant")
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Tenants migrated in parallel, each worker on its own connection",
)
@lock_timeout_option(
    "Milliseconds a schema change may wait for a table lock before the tenant fails "
    "(recorded, retried by the next run); also bounds how long requests queue behind it"
)
@with_appcontext
def migrate(slug: str | None, jobs: int, lock_timeout_ms: int) -> None:
    """Upgrade the shared schema, then every tenant (or one) to head."""
    click.echo(f"shared schema at {migrate_shared()}")
    head = migrations.head_revision("tenant")
    plan = service.plan_migration(head=head, uow=owner_uow(), slug=slug)
    click.echo(f"{len(plan.pending)} of {plan.fleet_size} tenant(s) to migrate to {head}")
    started = time.perf_counter()
    results = run_migration(plan, jobs, lock_timeout_ms) if plan.pending else []
    elapsed = time.perf_counter() - started
    print_summary(results)
    counts = Counter(r.outcome.value for r in results)
    methods = Counter(r.method.value for r in results if r.method is not None)
    current = plan.fleet_size - len(results) + counts["current"]
    click.echo(
        f"tenants at {head}: {counts['migrated']} migrated ({methods['script']} by step script, "
        f"{methods['chain']} by the migration chain), {current} already current, "
        f"{counts['busy']} busy (another run), {counts['skipped']} skipped, "
        f"{counts['failed']} failed; {jobs} job(s), {elapsed:.1f} s"
    )
    if slug is None:  # a deploy: the spare schemas follow the new head
        refill_after_migrate()
    if counts["failed"]:
        fail(f"{counts['failed']} tenant(s) failed to migrate; fix the cause and run again")


def run_migration(plan: service.MigrationPlan, jobs: int, lock_timeout_ms: int) -> list:
    owner = owner_access()
    uow_factory = fleet.RegistryUowFactory.for_current_tree(
        owner.url, owner.runtime_role, citus=owner.settings.citus
    )
    fleet.preload_workers()
    results = []
    try:
        with click.progressbar(
            length=len(plan.pending), label="tenants", show_pos=True, show_eta=True
        ) as bar:
            for result in service.migrate_tenants(
                plan=plan, uow_factory=uow_factory, jobs=jobs, lock_timeout_ms=lock_timeout_ms
            ):
                results.append(result)
                bar.update(1)
    finally:
        fleet.dispose_engines()
    return results


def print_summary(results: list) -> None:
    """One line per tenant the run touched (tenants already current are only counted)."""
    touched = [r for r in results if r.outcome.value != "current"]
    if not touched:
        return
    click.echo(f"{'slug':<40} {'outcome':<9} {'from':<12} {'to':<12} {'seconds':>7}  error")
    for r in sorted(touched, key=lambda r: (r.ok, r.slug)):
        click.echo(
            f"{r.slug:<40} {r.outcome.value:<9} {r.from_version or '-':<12} "
            f"{r.version or '-':<12} {r.seconds:>7.2f}  {r.error or ''}"
        )


@tenants_cli.command("downgrade")
@click.option("--slug", required=True)
@click.option("--to", "revision", required=True, help="A tenant revision below the schema's current one")
@with_appcontext
def downgrade(slug: str, revision: str) -> None:
    """Downgrade one tenant's schema (docs/runbooks/migrate-fleet.md): the registry's version and
    the grants follow, the next `tenants migrate` brings it back to head; audited."""
    done = service.downgrade_tenant(slug=slug, revision=revision, uow=owner_uow())
    tenant = done.tenant
    click.echo(
        f"downgraded {tenant.slug} ({tenant.id}) schema {tenant.schema_name} "
        f"from {done.from_version} to {done.version}"
    )


@tenants_cli.command("send-password-reset")
@click.option("--email", required=True)
@with_appcontext
def send_password_reset(email: str) -> None:
    """Mail a password link to a user: how the owner of a provisioned workspace sets a first
    password (the same single-use, short-lived link as a forgotten password)."""
    settings = _runtime().settings
    found = identity.request_password_reset(
        email=email,
        now=datetime.now(UTC),
        reset_ttl_s=settings.password_reset_ttl_s,
        app_url=settings.app_url,
        uow=owner_uow(),
        mailer=mailer_for(settings),
    )
    if not found:
        fail(f"not_found: no user with email {email}")
    click.echo(f"password link mailed to {email} (valid {settings.password_reset_ttl_s // 60} minutes)")


@tenants_cli.command("reset-mfa")
@click.option("--email", required=True)
@with_appcontext
def reset_mfa(email: str) -> None:
    """Remove a locked-out user's second factor (lost phone and recovery codes): their sessions
    end (the API processes hear of it through the registry's notifications), the reset is in
    their workspaces' audit trails. Check who is asking first."""
    identity_mfa.reset_by_operator(email=email, now=datetime.now(UTC), uow=owner_uow())
    click.echo(f"second factor removed for {email}; their sessions ended")


@tenants_cli.command("disable")
@click.option("--slug", required=True)
@click.option(
    "--reason",
    type=click.Choice([r.value for r in DisableReason]),
    default=DisableReason.OTHER.value,
    show_default=True,
    help="Recorded in the audit trail (a fixed list: no free text)",
)
@with_appcontext
def disable(slug: str, reason: str) -> None:
    """Block a tenant for everyone (workers and clients) until it is enabled again."""
    tenant = service.disable_tenant(
        slug=slug, reason=DisableReason(reason), now=datetime.now(UTC), uow=owner_uow()
    )
    click.echo(f"{tenant.slug} ({tenant.id}) is disabled since {tenant.disabled_at:%Y-%m-%d %H:%M:%S%z}")


@tenants_cli.command("extend-trial")
@click.option("--slug", required=True)
@click.option("--days", required=True, type=int, help="Days added to the trial end (from now if it ended)")
@with_appcontext
def extend_trial(slug: str, days: int) -> None:
    """Extend a tenant's trial: an expired, read-only workspace becomes active again."""
    tenant = service.extend_trial(slug=slug, days=days, now=datetime.now(UTC), uow=owner_uow())
    click.echo(f"{tenant.slug} ({tenant.id}) is on trial until {tenant.trial_ends_at:%Y-%m-%d %H:%M:%S%z}")


@tenants_cli.command("enable")
@click.option("--slug", required=True)
@with_appcontext
def enable(slug: str) -> None:
    """Lift a disable: the tenant's workers and clients get their access back."""
    tenant = service.enable_tenant(slug=slug, uow=owner_uow())
    click.echo(f"{tenant.slug} ({tenant.id}) is {tenant.status.value}")
