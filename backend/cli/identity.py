"""Identity operator commands: `tenants verify-worker --email E`; a member's session token
for tooling that sets members up directly (tests, benchmarks)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import click
from flask.cli import with_appcontext

from backend.cli.tenants import owner_uow, tenants_cli
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service import identity as service
from backend.service.identity.sessions import start_session


@tenants_cli.command("verify-worker")
@click.option("--email", required=True)
@with_appcontext
def verify_worker(email: str) -> None:
    """Mark a worker's email as verified (as if they had followed the mailed link)."""
    user = service.verify_worker_by_operator(email=email, now=datetime.now(UTC), uow=owner_uow())
    click.echo(f"verified {user.email} ({user.id})")


def member_session_token(runtime, *, user_id: uuid.UUID, tenant_id: uuid.UUID, refresh_ttl_s: int) -> str:
    """Start a session for the user's membership of the tenant, as login does after checking
    the password; its access token. Every access token names a session (`sid`), and the API
    refuses one whose session is not an active refresh family of that member. As the runtime
    role, as login does (the API's Runtime has no owner engine)."""
    with SqlRegistryUnitOfWork(runtime.engine) as uow:
        membership = uow.memberships.get(user_id, tenant_id)
        if membership is None:
            raise LookupError(f"user {user_id} is no member of tenant {tenant_id}")
        pair = start_session(
            uow=uow,
            tokens=runtime.tokens,
            membership=membership,
            now=datetime.now(UTC),
            refresh_ttl_s=refresh_ttl_s,
        )
        uow.commit()
    return pair.access_token
