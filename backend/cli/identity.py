"""Identity operator commands: `tenants verify-worker --email E`."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from backend.cli.tenants import owner_uow, tenants_cli
from backend.service import identity as service


@tenants_cli.command("verify-worker")
@click.option("--email", required=True)
@with_appcontext
def verify_worker(email: str) -> None:
    """Mark a worker's email as verified (as if they had followed the mailed link)."""
    user = service.verify_worker_by_operator(email=email, now=datetime.now(UTC), uow=owner_uow())
    click.echo(f"verified {user.email} ({user.id})")
