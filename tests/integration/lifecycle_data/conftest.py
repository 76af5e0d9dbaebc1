"""Helpers for the data-lifecycle tests: people, tokens, media files and a look at what a
tenant leaves behind (schema, files, shared rows)."""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from psycopg import sql
from sqlalchemy import func, insert, select, text

from backend.core.db import set_tenant_search_path
from backend.domain.identity import Role
from backend.infrastructure.sql.clients import clients
from backend.infrastructure.sql.identity import (
    SqlMembershipRepository,
    SqlUserRepository,
    memberships,
    one_time_tokens,
    refresh_tokens,
    users,
)
from backend.infrastructure.sql.tenants import tenants
from tests.owner import owner_engine


@dataclass
class Workspace:
    """A provisioned tenant with a few clients, client users, tokens and media files."""

    tenant: object
    worker_id: uuid.UUID
    client_ids: list[uuid.UUID] = field(default_factory=list)
    client_user_ids: list[uuid.UUID] = field(default_factory=list)
    media: dict[str, str] = field(default_factory=dict)  # name -> sha256


@pytest.fixture()
def owner(runtime):
    return owner_engine()


@pytest.fixture()
def media_root(settings):
    return settings.media_dir


def add_client_user(engine, tenant, name: str, email: str | None = None) -> tuple[uuid.UUID, uuid.UUID]:
    client_id, user_id = uuid.uuid4(), uuid.uuid4()
    email = email or f"c-{user_id.hex[:12]}@example.com"
    with engine.begin() as connection:
        set_tenant_search_path(connection, tenant.schema_name)
        connection.execute(insert(clients).values(id=client_id, name=name, email=email))
        existing = connection.execute(
            select(users.c.id).where(func.lower(users.c.email) == email.lower())
        ).scalar_one_or_none()
        if existing is None:
            SqlUserRepository(connection).add(user_id, email, name, "argon2-placeholder-hash")
        else:
            user_id = existing
        SqlMembershipRepository(connection).add(
            user_id=user_id, tenant_id=tenant.id, role=Role.CLIENT, client_id=client_id
        )
    return client_id, user_id


def add_tokens(engine, tenant, user_id: uuid.UUID) -> None:
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(refresh_tokens).values(
                id=uuid.uuid4(),
                family_id=uuid.uuid4(),
                user_id=user_id,
                tenant_id=tenant.id,
                token_hash=os.urandom(32),
                expires_at=now + timedelta(days=30),
            )
        )
        connection.execute(
            insert(one_time_tokens).values(
                id=uuid.uuid4(),
                kind="invitation",
                token_hash=os.urandom(32),
                user_id=user_id,
                tenant_id=tenant.id,
                expires_at=now + timedelta(days=3),
            )
        )


def write_media(media_root, tenant, name: str, data: bytes) -> str:
    folder = media_root / str(tenant.id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)
    return hashlib.sha256(data).hexdigest()


@pytest.fixture()
def workspace(make_tenant, owner, media_root):
    """Build a populated workspace; `shared_client` also becomes a client elsewhere."""

    def build(shared_with=None) -> Workspace:
        tenant = make_tenant()
        with owner.connect() as connection:
            worker_id = connection.execute(
                select(memberships.c.user_id).where(
                    memberships.c.tenant_id == tenant.id, memberships.c.role == "worker"
                )
            ).scalar_one()
        ws = Workspace(tenant=tenant, worker_id=worker_id)
        for index in range(3):
            email = None
            if shared_with is not None and index == 0:
                email = shared_with
            client_id, user_id = add_client_user(owner, tenant, f"Client {index}", email)
            ws.client_ids.append(client_id)
            ws.client_user_ids.append(user_id)
            add_tokens(owner, tenant, user_id)
        add_tokens(owner, tenant, worker_id)
        for index in range(2):
            name = str(uuid.uuid4())
            ws.media[name] = write_media(media_root, tenant, name, os.urandom(1000 + index))
        return ws

    return build


def schema_exists(engine, schema_name: str) -> bool:
    with engine.connect() as connection:
        return bool(
            connection.execute(
                text("SELECT count(*) FROM pg_namespace WHERE nspname = :name"), {"name": schema_name}
            ).scalar_one()
        )


def registry_row(engine, tenant_id: uuid.UUID):
    with engine.connect() as connection:
        return connection.execute(select(tenants).where(tenants.c.id == tenant_id)).mappings().one()


def count_rows(engine, table, **where) -> int:
    query = select(func.count()).select_from(table)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as connection:
        return connection.execute(query).scalar_one()


def user_exists(engine, user_id: uuid.UUID) -> bool:
    return count_rows(engine, users, id=user_id) == 1


def audit_events_of(engine, tenant_id: uuid.UUID) -> list[tuple[str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT event, outcome FROM shared.audit_events WHERE tenant_id = :t ORDER BY id"),
            {"t": tenant_id},
        )
        return [(row.event, row.outcome) for row in rows]


def table_rows(engine, schema_name: str, table: str) -> list[tuple]:
    with engine.connect() as connection:
        set_tenant_search_path(connection, schema_name)
        statement = sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(table))
        rows = connection.exec_driver_sql(statement.as_string(None)).all()
        connection.rollback()
    return [tuple(row) for row in rows]
