"""Identity operator commands: `tenants verify-worker --email E`."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from backend.cli.tenants import fail, owner_uow, tenants_cli
from backend.domain.errors import DomainError
from backend.service import identity as service


@tenants_cli.command("verify-worker")
@click.option("--email", required=True)
@with_appcontext
def verify_worker(email: str) -> None:
    """Mark a worker's email as verified (as if they had followed the mailed link)."""
    try:
        user = service.verify_worker_by_operator(email=email, now=datetime.now(UTC), uow=owner_uow())
    except DomainError as error:
        fail(f"{error.code}: {error.message or email}")
    click.echo(f"verified {user.email} ({user.id})")
