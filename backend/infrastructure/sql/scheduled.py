"""Scheduled work in the registry: what lets a periodic run find the tenants with something
due from one index, without opening any tenant schema (docs/data-lifecycle.md).

- `shared.scheduled_work`: one row per tenant whose trash holds soft-deleted media, with the
  deletion time of the oldest; the media are due for the purge from that time plus the media
  retention. Written in the transaction that soft-deletes (the tenant role may), settled by
  the retention run (the row goes when the trash is empty) and removed by the tenant's purge.
  The retention is applied at read time, so a changed MEDIA_RETENTION_DAYS needs no rewrite.
- Due deletions come from `tenants.deletion_due_at`, unverified signups from
  `users.created_at` where `verified_at IS NULL`: both with a partial index (revision
  0010_scheduled_work).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, DateTime, ForeignKey, Index, Table, Uuid, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection

from backend.domain.lifecycle import UnverifiedSignup
from backend.domain.tenants import Tenant, TenantStatus
from backend.infrastructure.sql.identity import memberships, users
from backend.infrastructure.sql.metadata import shared_metadata
from backend.infrastructure.sql.tenants import _to_tenant, tenants

scheduled_work = Table(
    "scheduled_work",
    shared_metadata,
    Column("tenant_id", Uuid, ForeignKey("shared.tenants.id", ondelete="CASCADE"), primary_key=True),
    # When the oldest soft-deleted media item of the tenant was deleted.
    Column("media_trash_since", DateTime(timezone=True), nullable=False),
    Index("ix_scheduled_work_media_trash_since", "media_trash_since"),
)

# What is due without a tenant's own row: a deletion past its grace period, a signup never
# verified. Partial indexes: the rows they cover are few, whatever the fleet's size.
Index(
    "ix_tenants_deletion_due_at",
    tenants.c.deletion_due_at,
    postgresql_where=tenants.c.status == TenantStatus.DELETION_SCHEDULED.value,
)
Index("ix_users_created_at_unverified", users.c.created_at, postgresql_where=users.c.verified_at.is_(None))

# Tenants whose schema exists (a `deleted` tenant has none; `provisioning` is never committed).
WITH_SCHEMA = (TenantStatus.ACTIVE.value, TenantStatus.DISABLED.value, TenantStatus.DELETION_SCHEDULED.value)


class SqlMediaTrash:
    """The tenant's own row in `shared.scheduled_work`, from a tenant unit of work."""

    def __init__(self, connection: Connection, schema_name: str) -> None:
        self._connection = connection
        self._tenant_id = select(tenants.c.id).where(tenants.c.schema_name == schema_name).scalar_subquery()

    def trashed(self, at: datetime) -> None:
        """Media were soft-deleted at `at`: the row exists and is no later than `at`."""
        statement = insert(scheduled_work).from_select(
            ["tenant_id", "media_trash_since"],
            select(self._tenant_id, func.cast(at, DateTime(timezone=True))),
        )
        self._connection.execute(
            statement.on_conflict_do_update(
                index_elements=[scheduled_work.c.tenant_id],
                set_={
                    "media_trash_since": func.least(
                        scheduled_work.c.media_trash_since, statement.excluded.media_trash_since
                    )
                },
            )
        )

    def lock(self) -> None:
        """Lock the row for this transaction: a soft-delete committing meanwhile waits, so the
        settle below never clears a row whose trash just received an item."""
        self._connection.execute(
            select(scheduled_work.c.tenant_id)
            .where(scheduled_work.c.tenant_id == self._tenant_id)
            .with_for_update()
        )

    def settle(self, oldest: datetime | None) -> None:
        """After a purge: the row follows the oldest item left in the trash, or goes."""
        if oldest is None:
            self._connection.execute(
                delete(scheduled_work).where(scheduled_work.c.tenant_id == self._tenant_id)
            )
        else:
            self._connection.execute(
                update(scheduled_work)
                .where(scheduled_work.c.tenant_id == self._tenant_id)
                .values(media_trash_since=oldest)
            )


class SqlScheduledWorkRepository:
    """The registry's side of the periodic runs: what is due, read from indexes only."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def media_due(self, trashed_before: datetime) -> list[Tenant]:
        """Tenants holding media soft-deleted before `trashed_before` (the retention cutoff)."""
        rows = self._connection.execute(
            select(tenants)
            .join(scheduled_work, scheduled_work.c.tenant_id == tenants.c.id)
            .where(scheduled_work.c.media_trash_since < trashed_before, tenants.c.status.in_(WITH_SCHEMA))
            .order_by(scheduled_work.c.media_trash_since)
        )
        return [_to_tenant(row) for row in rows]

    def forget(self, tenant_id: uuid.UUID) -> None:
        """The tenant's schema is gone (purge): nothing of it is due any more."""
        self._connection.execute(delete(scheduled_work).where(scheduled_work.c.tenant_id == tenant_id))

    def unverified_signups(self, created_before: datetime) -> list[UnverifiedSignup]:
        """Users who signed up (they chose a password) before `created_before` and never
        verified their email, with the workspaces they own: one index range on `users`."""
        mine = memberships.alias("mine")
        others = memberships.alias("others")
        someone_else = (
            select(func.count())
            .select_from(others)
            .where(others.c.tenant_id == mine.c.tenant_id, others.c.user_id != mine.c.user_id)
            .scalar_subquery()
        )
        rows = self._connection.execute(
            select(users.c.id, mine.c.tenant_id, mine.c.role, someone_else.label("others"))
            .select_from(users.outerjoin(mine, mine.c.user_id == users.c.id))
            .where(
                users.c.verified_at.is_(None),
                users.c.created_at < created_before,
                users.c.password_hash.is_not(None),
            )
            .order_by(users.c.created_at, users.c.id)
        )
        found: dict[uuid.UUID, UnverifiedSignup] = {}
        for row in rows:
            signup = found.setdefault(row.id, UnverifiedSignup(row.id, (), False))
            if row.tenant_id is None:
                continue
            shared = signup.shared or row.role != "worker" or bool(row.others)
            found[row.id] = UnverifiedSignup(row.id, (*signup.owned, row.tenant_id), shared)
        return list(found.values())

    def remove_unverified_user(self, user_id: uuid.UUID) -> bool:
        """Deletes the user if still unverified and a member of nothing (their tokens and
        sessions go with the row: foreign keys cascade)."""
        return bool(
            self._connection.execute(
                delete(users).where(
                    users.c.id == user_id,
                    users.c.verified_at.is_(None),
                    ~select(memberships.c.user_id).where(memberships.c.user_id == user_id).exists(),
                )
            ).rowcount
        )
