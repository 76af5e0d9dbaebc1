"""A single server of this backend, not Citus, beside the suite's cluster: a plain PostgreSQL 15
node (citus_cluster.start_single) or the embedded server the default tests use, with an app of
its own, migrated, and tenants provisioned there with clients and media, as a deployment that
has not moved to Citus yet would hold them."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from backend.cli.owner import owner_access
from backend.infrastructure.sql.identity import memberships
from backend.infrastructure.sql.unit_of_work import SqlRegistryUnitOfWork
from backend.service.tenants import provision_tenant
from tests import owner
from tests.conftest import session_app, session_settings, unique_slug, verify_owner
from tests.integration.lifecycle_data.conftest import add_client_user, write_media
from tests.sessions import session_token


@dataclass
class SingleTenant:
    tenant: object
    worker_id: uuid.UUID
    client_ids: list[uuid.UUID] = field(default_factory=list)
    media: dict[str, bytes] = field(default_factory=dict)  # name -> content


def single_server_app(urls: dict, var_dir: Path, *, citus: bool = False) -> Flask:
    """An app on that server, its shared schema migrated; `release` closes it. Not the
    session's default owner (its server goes away with its test): helpers reach its
    owner through `owner.using(app)`."""
    settings = session_settings({**urls, "citus": citus}, var_dir)
    return next(session_app(settings, default_owner=False))


def release(app: Flask) -> None:
    """Close the app's connections, its access listener's included (before its server
    restarts or stops)."""
    app.extensions["saas"].access_cache.stop_listening()
    owner_access(app).dispose()
    app.extensions["saas"].engine.dispose()


def populate(
    app: Flask, *, clients: int = 3, media: int = 2, slug: str | None = None, spares: bool = False
) -> SingleTenant:
    """A tenant provisioned on that server as operators do (`spares`: taking a spare schema
    from the pool when one is ready), its owner verified, with clients (rows in its schema,
    client users in `shared`) and media files."""
    runtime = app.extensions["saas"]
    with owner.using(app):
        tenant = provision_tenant(
            slug=slug or unique_slug("single"),
            name="A single-server workspace",
            owner_email=f"owner-{uuid.uuid4().hex[:10]}@example.com",
            trial_days=14,
            now=datetime.now(UTC),
            uow=SqlRegistryUnitOfWork(owner.owner_engine(), runtime.runtime_role, spares=spares),
        )
        verify_owner(runtime, tenant)
        engine = owner.owner_engine()
        with engine.connect() as connection:
            worker_id = connection.execute(
                select(memberships.c.user_id).where(
                    memberships.c.tenant_id == tenant.id, memberships.c.role == "worker"
                )
            ).scalar_one()
        made = SingleTenant(tenant, worker_id)
        for index in range(clients):
            client_id, _ = add_client_user(engine, tenant, f"{tenant.slug} client {index}")
            made.client_ids.append(client_id)
    for _ in range(media):
        name, content = str(uuid.uuid4()), os.urandom(1500)
        write_media(runtime.settings.media_dir, tenant, name, content)
        made.media[name] = content
    return made


def worker_headers(app: Flask, made: SingleTenant) -> dict:
    """A token of the tenant's owner, for the API of `app`."""
    with owner.using(app):
        token = session_token(app.extensions["saas"], user_id=made.worker_id, tenant_id=made.tenant.id)
    return {"Authorization": f"Bearer {token}"}
