"""Global identity in the shared schema: users, memberships and token records."""

from __future__ import annotations

import uuid

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    LargeBinary,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    insert,
    select,
)
from sqlalchemy.engine import Connection, Engine

from backend.domain.identity import AccessRecord, Role
from backend.infrastructure.sql.metadata import shared_metadata
from backend.infrastructure.sql.tenants import tenants

users = Table(
    "users",
    shared_metadata,
    Column("id", Uuid, primary_key=True),
    Column("email", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("password_hash", Text),  # NULL until the person sets a password
    Column("verified_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
# Email is unique case-insensitively; the lookup by login uses the same expression.
Index("uq_users_email_lower", func.lower(users.c.email), unique=True)

memberships = Table(
    "memberships",
    shared_metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("shared.users.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", Uuid, ForeignKey("shared.tenants.id", ondelete="CASCADE"), nullable=False),
    Column("role", Text, nullable=False),
    Column("client_id", Uuid),  # the client record in the tenant schema, for clients
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("user_id", "tenant_id"),
    CheckConstraint("role IN ('worker','client')", name="role"),
    CheckConstraint("(role = 'client') = (client_id IS NOT NULL)", name="client_link"),
    Index("ix_memberships_tenant_id", "tenant_id"),
)

refresh_tokens = Table(
    "refresh_tokens",
    shared_metadata,
    Column("id", Uuid, primary_key=True),
    Column("family_id", Uuid, nullable=False),
    Column("user_id", Uuid, ForeignKey("shared.users.id", ondelete="CASCADE"), nullable=False),
    Column("tenant_id", Uuid, ForeignKey("shared.tenants.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", LargeBinary, nullable=False, unique=True),  # sha256 of the token
    Column("issued_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
    Index("ix_refresh_tokens_family_id", "family_id"),
    Index("ix_refresh_tokens_user_id_tenant_id", "user_id", "tenant_id"),
    Index("ix_refresh_tokens_tenant_id", "tenant_id"),
)

one_time_tokens = Table(
    "one_time_tokens",
    shared_metadata,
    Column("id", Uuid, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("token_hash", LargeBinary, nullable=False, unique=True),
    Column("user_id", Uuid, ForeignKey("shared.users.id", ondelete="CASCADE")),
    Column("tenant_id", Uuid, ForeignKey("shared.tenants.id", ondelete="CASCADE")),
    Column("client_id", Uuid),
    Column("email", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    CheckConstraint("kind IN ('email_verification','invitation')", name="kind"),
    Index("ix_one_time_tokens_user_id", "user_id"),
    Index("ix_one_time_tokens_tenant_id", "tenant_id"),
)


class SqlUserRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def id_by_email(self, email: str) -> uuid.UUID | None:
        return self._connection.execute(
            select(users.c.id).where(func.lower(users.c.email) == email.lower())
        ).scalar_one_or_none()

    def add(self, user_id: uuid.UUID, email: str, name: str, password_hash: str | None) -> None:
        self._connection.execute(
            insert(users).values(id=user_id, email=email, name=name, password_hash=password_hash)
        )


class SqlMembershipRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(
        self,
        *,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID,
        role: Role,
        client_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        membership_id = uuid.uuid4()
        self._connection.execute(
            insert(memberships).values(
                id=membership_id,
                user_id=user_id,
                tenant_id=tenant_id,
                role=role.value,
                client_id=client_id,
            )
        )
        return membership_id


def load_access(engine: Engine, user_id: uuid.UUID, tenant_id: uuid.UUID) -> AccessRecord | None:
    """One round trip: the membership of this user in this tenant, with the tenant's state."""
    query = (
        select(
            memberships.c.role,
            memberships.c.client_id,
            tenants.c.schema_name,
            tenants.c.slug,
            tenants.c.status,
        )
        .join(tenants, tenants.c.id == memberships.c.tenant_id)
        .where(memberships.c.user_id == user_id, memberships.c.tenant_id == tenant_id)
    )
    with engine.connect() as connection:
        row = connection.execute(query).first()
        connection.rollback()
    if row is None:
        return None
    return AccessRecord(
        user_id=user_id,
        tenant_id=tenant_id,
        tenant_schema=row.schema_name,
        tenant_slug=row.slug,
        tenant_status=row.status,
        role=Role(row.role),
        client_id=row.client_id,
    )
