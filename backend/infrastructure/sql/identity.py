"""Global identity in the shared schema: users, memberships and token records, with their
repositories; and the one lookup identity makes in a tenant schema (the invited client)."""

from __future__ import annotations

import functools
import uuid
from datetime import datetime

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
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.engine import Connection, Engine

from backend.core.db import set_tenant_search_path
from backend.domain.identity import (
    AccessRecord,
    ClientContact,
    Membership,
    OneTimeToken,
    OneTimeTokenKind,
    RefreshToken,
    Role,
    SessionInfo,
    User,
)
from backend.domain.tenants import Plan, TenantStatus
from backend.infrastructure.sql.clients import clients
from backend.infrastructure.sql.metadata import shared_metadata
from backend.infrastructure.sql.mfa import user_mfa
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
    Column("user_agent", Text),  # of the request that issued it: names the device in "my sessions"
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
    CheckConstraint(
        "kind IN ('email_verification','invitation','password_reset','mfa_challenge','email_change')",
        name="kind",
    ),
    Index("ix_one_time_tokens_user_id", "user_id"),
    Index("ix_one_time_tokens_tenant_id", "tenant_id"),
)


def _to_user(row) -> User:
    return User(
        id=row.id,
        email=row.email,
        name=row.name,
        verified_at=row.verified_at,
        created_at=row.created_at,
        password_hash=row.password_hash,
    )


class SqlUserRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def id_by_email(self, email: str) -> uuid.UUID | None:
        return self._connection.execute(
            select(users.c.id).where(func.lower(users.c.email) == email.lower())
        ).scalar_one_or_none()

    def add(
        self,
        user_id: uuid.UUID,
        email: str,
        name: str,
        password_hash: str | None,
        verified_at: datetime | None = None,
    ) -> None:
        self._connection.execute(
            insert(users).values(
                id=user_id,
                email=email,
                name=name,
                password_hash=password_hash,
                verified_at=verified_at,
            )
        )

    def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
        query = select(users).where(users.c.id == user_id)
        row = self._connection.execute(query.with_for_update() if for_update else query).first()
        return _to_user(row) if row else None

    def by_email(self, email: str, *, for_update: bool = False) -> User | None:
        query = select(users).where(func.lower(users.c.email) == email.lower())
        row = self._connection.execute(query.with_for_update() if for_update else query).first()
        return _to_user(row) if row else None

    def set_password_hash(self, user_id: uuid.UUID, password_hash: str) -> None:
        self._connection.execute(
            update(users).where(users.c.id == user_id).values(password_hash=password_hash)
        )

    def delete(self, user_id: uuid.UUID) -> None:
        """The login itself; tokens, sessions and second factor go with it (ON DELETE CASCADE)."""
        self._connection.execute(delete(users).where(users.c.id == user_id))

    def set_email(self, user_id: uuid.UUID, email: str) -> None:
        """The unique index on lower(email) turns a taken address into 409 `email_taken`."""
        self._connection.execute(update(users).where(users.c.id == user_id).values(email=email))

    def set_name(self, user_id: uuid.UUID, name: str) -> None:
        self._connection.execute(update(users).where(users.c.id == user_id).values(name=name))

    def mark_verified(self, user_id: uuid.UUID, at: datetime) -> bool:
        """Set verified_at once; False when it was already set."""
        result = self._connection.execute(
            update(users).where(users.c.id == user_id, users.c.verified_at.is_(None)).values(verified_at=at)
        )
        return result.rowcount == 1


def _to_membership(row) -> Membership:
    return Membership(
        user_id=row.user_id,
        tenant_id=row.tenant_id,
        tenant_slug=row.slug,
        tenant_status=TenantStatus(row.status),
        role=Role(row.role),
        client_id=row.client_id,
    )


class SqlMembershipRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def remove(self, user_id: uuid.UUID, tenant_id: uuid.UUID) -> bool:
        """The user's membership of this workspace goes (their own account closing)."""
        result = self._connection.execute(
            delete(memberships).where(memberships.c.user_id == user_id, memberships.c.tenant_id == tenant_id)
        )
        return bool(result.rowcount)

    def worker_emails(self, tenant_id: uuid.UUID) -> list[str]:
        """Who to tell about the workspace's clients (its workers' addresses)."""
        query = (
            select(users.c.email)
            .join(memberships, memberships.c.user_id == users.c.id)
            .where(memberships.c.tenant_id == tenant_id, memberships.c.role == Role.WORKER.value)
            .order_by(users.c.email)
        )
        return list(self._connection.execute(query).scalars())

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

    def _select(self):
        return select(
            memberships.c.user_id,
            memberships.c.tenant_id,
            memberships.c.role,
            memberships.c.client_id,
            tenants.c.slug,
            tenants.c.status,
        ).join(tenants, tenants.c.id == memberships.c.tenant_id)

    def for_user(self, user_id: uuid.UUID) -> list[Membership]:
        """The user's workspaces that still exist (a purged tenant is no one's workspace)."""
        query = (
            self._select()
            .where(memberships.c.user_id == user_id, tenants.c.status != TenantStatus.DELETED.value)
            .order_by(tenants.c.slug)
        )
        return [_to_membership(row) for row in self._connection.execute(query)]

    def get(self, user_id: uuid.UUID, tenant_id: uuid.UUID) -> Membership | None:
        query = self._select().where(memberships.c.user_id == user_id, memberships.c.tenant_id == tenant_id)
        row = self._connection.execute(query).first()
        return _to_membership(row) if row else None

    def client_is_linked(self, tenant_id: uuid.UUID, client_id: uuid.UUID) -> bool:
        query = select(
            exists().where(memberships.c.tenant_id == tenant_id, memberships.c.client_id == client_id)
        )
        return bool(self._connection.execute(query).scalar())


def _to_refresh_token(row) -> RefreshToken:
    return RefreshToken(
        id=row.id,
        family_id=row.family_id,
        user_id=row.user_id,
        tenant_id=row.tenant_id,
        expires_at=row.expires_at,
        used_at=row.used_at,
        revoked_at=row.revoked_at,
    )


class SqlRefreshTokenRepository:
    """Refresh tokens are stored as their SHA-256 digest only."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(
        self,
        *,
        family_id: uuid.UUID,
        user_id: uuid.UUID,
        tenant_id: uuid.UUID,
        token_hash: bytes,
        issued_at: datetime,
        expires_at: datetime,
        user_agent: str | None = None,
    ) -> uuid.UUID:
        token_id = uuid.uuid4()
        self._connection.execute(
            insert(refresh_tokens).values(
                user_agent=user_agent,
                id=token_id,
                family_id=family_id,
                user_id=user_id,
                tenant_id=tenant_id,
                token_hash=token_hash,
                issued_at=issued_at,
                expires_at=expires_at,
            )
        )
        return token_id

    def lock_by_hash(self, token_hash: bytes) -> RefreshToken | None:
        """The token row, locked: two concurrent uses of one token are serialised."""
        row = self._connection.execute(
            select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash).with_for_update()
        ).first()
        return _to_refresh_token(row) if row else None

    def mark_used(self, token_id: uuid.UUID, at: datetime) -> None:
        self._connection.execute(
            update(refresh_tokens).where(refresh_tokens.c.id == token_id).values(used_at=at)
        )

    def revoke_family(self, family_id: uuid.UUID, at: datetime) -> int:
        result = self._connection.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.family_id == family_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return result.rowcount

    def revoke_for(self, user_id: uuid.UUID, tenant_id: uuid.UUID, at: datetime) -> int:
        result = self._connection.execute(
            update(refresh_tokens)
            .where(
                refresh_tokens.c.user_id == user_id,
                refresh_tokens.c.tenant_id == tenant_id,
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=at)
        )
        return result.rowcount

    def revoke_all_for_user(self, user_id: uuid.UUID, at: datetime) -> int:
        """Every session of the user in every workspace (password reset or change)."""
        result = self._connection.execute(
            update(refresh_tokens)
            .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        return result.rowcount

    def revoke_user_family(
        self, user_id: uuid.UUID, tenant_id: uuid.UUID, family_id: uuid.UUID, at: datetime
    ) -> int:
        """One session, only if it is this user's in this workspace: 0 rows otherwise."""
        result = self._connection.execute(
            update(refresh_tokens)
            .where(
                refresh_tokens.c.family_id == family_id,
                refresh_tokens.c.user_id == user_id,
                refresh_tokens.c.tenant_id == tenant_id,
                refresh_tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=at)
        )
        return result.rowcount

    def revoke_others(
        self, user_id: uuid.UUID, tenant_id: uuid.UUID | None, keep_family: uuid.UUID | None, at: datetime
    ) -> int:
        """The user's sessions except `keep_family` (in one workspace, or all when tenant_id is None)."""
        query = update(refresh_tokens).where(
            refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None)
        )
        if tenant_id is not None:
            query = query.where(refresh_tokens.c.tenant_id == tenant_id)
        if keep_family is not None:
            query = query.where(refresh_tokens.c.family_id != keep_family)
        return self._connection.execute(query.values(revoked_at=at)).rowcount

    def sessions_of(self, user_id: uuid.UUID, tenant_id: uuid.UUID, now: datetime) -> list[SessionInfo]:
        """The live sessions (families with an unrevoked, unexpired token), newest use first.
        Served by ix_refresh_tokens_user_id_tenant_id."""
        t = refresh_tokens
        latest_agent = func.array_agg(aggregate_order_by(t.c.user_agent, t.c.issued_at.desc()))[1]
        rows = self._connection.execute(
            select(
                t.c.family_id,
                func.min(t.c.issued_at).label("created_at"),
                func.max(t.c.issued_at).label("last_used_at"),
                latest_agent.label("user_agent"),
            )
            .where(t.c.user_id == user_id, t.c.tenant_id == tenant_id)
            .group_by(t.c.family_id)
            .having(func.bool_and(t.c.revoked_at.is_(None)), func.max(t.c.expires_at) > now)
            .order_by(func.max(t.c.issued_at).desc())
        ).all()
        return [SessionInfo(r.family_id, r.created_at, r.last_used_at, r.user_agent) for r in rows]


def _to_one_time_token(row) -> OneTimeToken:
    return OneTimeToken(
        id=row.id,
        kind=OneTimeTokenKind(row.kind),
        user_id=row.user_id,
        tenant_id=row.tenant_id,
        client_id=row.client_id,
        email=row.email,
        expires_at=row.expires_at,
        used_at=row.used_at,
    )


class SqlOneTimeTokenRepository:
    """Email-verification and invitation tokens, stored as their SHA-256 digest only."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(
        self,
        *,
        kind: OneTimeTokenKind,
        token_hash: bytes,
        expires_at: datetime,
        user_id: uuid.UUID | None = None,
        tenant_id: uuid.UUID | None = None,
        client_id: uuid.UUID | None = None,
        email: str | None = None,
    ) -> uuid.UUID:
        token_id = uuid.uuid4()
        self._connection.execute(
            insert(one_time_tokens).values(
                id=token_id,
                kind=kind.value,
                token_hash=token_hash,
                user_id=user_id,
                tenant_id=tenant_id,
                client_id=client_id,
                email=email,
                expires_at=expires_at,
            )
        )
        return token_id

    def lock_by_hash(self, kind: OneTimeTokenKind, token_hash: bytes) -> OneTimeToken | None:
        row = self._connection.execute(
            select(one_time_tokens)
            .where(one_time_tokens.c.token_hash == token_hash, one_time_tokens.c.kind == kind.value)
            .with_for_update()
        ).first()
        return _to_one_time_token(row) if row else None

    def mark_used(self, token_id: uuid.UUID, at: datetime) -> None:
        self._connection.execute(
            update(one_time_tokens).where(one_time_tokens.c.id == token_id).values(used_at=at)
        )

    def expire_addressed_to(self, email: str, at: datetime) -> int:
        """End every unused token mailed to this address (invitations, links): once an account
        leaves an address, what was sent there no longer opens anything."""
        result = self._connection.execute(
            update(one_time_tokens)
            .where(
                func.lower(one_time_tokens.c.email) == email.strip().lower(),
                one_time_tokens.c.used_at.is_(None),
                one_time_tokens.c.expires_at > at,
            )
            .values(expires_at=at)
        )
        return result.rowcount

    def expire_outstanding(
        self,
        kind: OneTimeTokenKind,
        *,
        at: datetime,
        user_id: uuid.UUID | None = None,
        tenant_id: uuid.UUID | None = None,
        client_id: uuid.UUID | None = None,
    ) -> int:
        """End the unused, unexpired tokens of this kind for this user or client (a newer one
        supersedes them, or the purpose was fulfilled another way)."""
        conditions = [
            one_time_tokens.c.kind == kind.value,
            one_time_tokens.c.used_at.is_(None),
            one_time_tokens.c.expires_at > at,
        ]
        if user_id is not None:
            conditions.append(one_time_tokens.c.user_id == user_id)
        if tenant_id is not None:
            conditions.append(one_time_tokens.c.tenant_id == tenant_id)
        if client_id is not None:
            conditions.append(one_time_tokens.c.client_id == client_id)
        result = self._connection.execute(update(one_time_tokens).where(*conditions).values(expires_at=at))
        return result.rowcount


class SqlClientLogins:
    """Invitations and memberships tied to a client record, from inside its tenant's
    transaction: the tenant is the one whose schema is in scope (its registry row, found by
    schema name), so the rows of no other tenant can be reached from here."""

    def __init__(self, connection: Connection, schema_name: str) -> None:
        self._connection = connection
        self._schema_name = schema_name

    @functools.cached_property
    def _tenant(self):
        # Built on first use: every tenant unit of work makes this repository, few use it.
        return select(tenants.c.id).where(tenants.c.schema_name == self._schema_name).scalar_subquery()

    def revoke_invitations(self, client_id: uuid.UUID, at: datetime) -> int:
        """End the client's unused invitations (the email they were mailed to changed)."""
        result = self._connection.execute(
            update(one_time_tokens)
            .where(
                one_time_tokens.c.kind == OneTimeTokenKind.INVITATION.value,
                one_time_tokens.c.tenant_id == self._tenant,
                one_time_tokens.c.client_id == client_id,
                one_time_tokens.c.used_at.is_(None),
                one_time_tokens.c.expires_at > at,
            )
            .values(expires_at=at)
        )
        return result.rowcount

    def remove(self, client_id: uuid.UUID, at: datetime) -> int:
        """Remove the client's login from the workspace (the record is being deleted): its
        membership goes and its sessions here end, so its tokens fail at once; the person's
        account stays (it may belong to other workspaces). Returns the logins removed."""
        self.revoke_invitations(client_id, at)
        removed = (
            self._connection.execute(
                delete(memberships)
                .where(memberships.c.tenant_id == self._tenant, memberships.c.client_id == client_id)
                .returning(memberships.c.user_id)
            )
            .scalars()
            .all()
        )
        if removed:
            self._connection.execute(
                update(refresh_tokens)
                .where(
                    refresh_tokens.c.tenant_id == self._tenant,
                    refresh_tokens.c.user_id.in_(removed),
                    refresh_tokens.c.revoked_at.is_(None),
                )
                .values(revoked_at=at)
            )
        return len(removed)


class SqlClientDirectory:
    """Reads the invited client's record in its tenant schema.

    The lookup enters the tenant's scope (`set_tenant_search_path`: search path, and the
    tenant's own database role where tenant roles exist) for the rest of the transaction:
    tenant tables are reached the one way every request reaches them, and the shared tables
    identity writes next are schema-qualified and open to the tenant scope."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def contact(self, schema_name: str, client_id: uuid.UUID) -> ClientContact | None:
        set_tenant_search_path(self._connection, schema_name)
        row = self._connection.execute(
            select(clients.c.id, clients.c.name, clients.c.email).where(clients.c.id == client_id)
        ).first()
        return ClientContact(id=row.id, name=row.name, email=row.email) if row else None


def tenant_status(engine: Engine, tenant_id: uuid.UUID) -> TenantStatus | None:
    """The registry's status of a tenant (its tombstone's, once purged), or None."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        status = connection.execute(select(tenants.c.status).where(tenants.c.id == tenant_id)).scalar()
    return TenantStatus(status) if status is not None else None


def _access_query():
    """load_access's statement, built once: a cache miss (a member's first request in a
    process) pays for its execution, not for building and keying the statement again."""
    user_id, tenant_id, session_id = bindparam("user_id"), bindparam("tenant_id"), bindparam("session_id")
    factor_on = exists().where(user_mfa.c.user_id == user_id, user_mfa.c.enabled_at.is_not(None))
    active = exists().where(
        refresh_tokens.c.family_id == session_id,
        refresh_tokens.c.user_id == user_id,
        refresh_tokens.c.tenant_id == tenant_id,
        refresh_tokens.c.revoked_at.is_(None),
    )
    columns = [
        memberships.c.role,
        memberships.c.client_id,
        tenants.c.schema_name,
        tenants.c.slug,
        tenants.c.name,
        tenants.c.status,
        tenants.c.plan,
        tenants.c.trial_ends_at,
        tenants.c.deletion_due_at,
        tenants.c.last_migration_error,
        users.c.verified_at,
        active.label("session_active"),
        tenants.c.mfa_required_for_workers,
        factor_on.label("mfa_enabled"),
    ]
    return (
        select(*columns)
        .join(tenants, tenants.c.id == memberships.c.tenant_id)
        .join(users, users.c.id == memberships.c.user_id)
        .where(memberships.c.user_id == user_id, memberships.c.tenant_id == tenant_id)
    )


_ACCESS_QUERY = _access_query()


def load_access(
    engine: Engine,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    session_id: uuid.UUID,
) -> AccessRecord | None:
    """One round trip: the membership of this user in this tenant, the tenant's state (and
    whether its last migration failed), the user's verification and whether the token's
    session is active: a refresh family of this user in this tenant with no revoked token
    (logout, refresh-token reuse and client deletion revoke the whole family)."""
    # Autocommit: one statement needs no BEGIN and ROLLBACK, two round trips fewer.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        row = connection.execute(
            _ACCESS_QUERY, {"user_id": user_id, "tenant_id": tenant_id, "session_id": session_id}
        ).first()
    if row is None:
        return None
    return AccessRecord(
        user_id=user_id,
        tenant_id=tenant_id,
        tenant_schema=row.schema_name,
        tenant_slug=row.slug,
        tenant_status=TenantStatus(row.status),
        role=Role(row.role),
        client_id=row.client_id,
        tenant_name=row.name,
        plan=Plan(row.plan),
        trial_ends_at=row.trial_ends_at,
        deletion_due_at=row.deletion_due_at,
        user_verified=row.verified_at is not None,
        session_active=bool(row.session_active),
        migration_failed=row.last_migration_error is not None,
        mfa_required=bool(row.mfa_required_for_workers),
        mfa_enabled=bool(row.mfa_enabled),
    )
