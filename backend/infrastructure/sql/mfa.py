"""A user's TOTP second factor and recovery codes (shared schema). The secret is stored
sealed by the SecretBox (infrastructure/secret_box.py), recovery codes as SHA-256 digests."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    LargeBinary,
    Table,
    UniqueConstraint,
    Uuid,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from backend.domain.identity import MfaFactor
from backend.infrastructure.sql.metadata import shared_metadata

user_mfa = Table(
    "user_mfa",
    shared_metadata,
    Column("user_id", Uuid, ForeignKey("shared.users.id", ondelete="CASCADE"), primary_key=True),
    Column("secret_sealed", LargeBinary, nullable=False),
    Column("enabled_at", DateTime(timezone=True)),  # NULL while the enrolment awaits its code
    Column("last_step", BigInteger),  # the last accepted TOTP time step: a code is never replayed
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

mfa_recovery_codes = Table(
    "mfa_recovery_codes",
    shared_metadata,
    Column("id", Uuid, primary_key=True),
    Column("user_id", Uuid, ForeignKey("shared.users.id", ondelete="CASCADE"), nullable=False),
    Column("code_hash", LargeBinary, nullable=False),
    Column("used_at", DateTime(timezone=True)),
    UniqueConstraint("user_id", "code_hash"),
)


class SqlMfaRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def get(self, user_id: uuid.UUID, *, for_update: bool = False) -> MfaFactor | None:
        query = select(user_mfa).where(user_mfa.c.user_id == user_id)
        if for_update:
            query = query.with_for_update()
        row = self._connection.execute(query).first()
        return MfaFactor(row.user_id, row.secret_sealed, row.enabled_at, row.last_step) if row else None

    def start(self, user_id: uuid.UUID, secret_sealed: bytes) -> None:
        """A pending enrolment (replacing a pending one; an enabled factor is never replaced here)."""
        self._connection.execute(
            delete(user_mfa).where(user_mfa.c.user_id == user_id, user_mfa.c.enabled_at.is_(None))
        )
        self._connection.execute(insert(user_mfa).values(user_id=user_id, secret_sealed=secret_sealed))

    def enable(self, user_id: uuid.UUID, at: datetime, step: int) -> None:
        self._connection.execute(
            update(user_mfa).where(user_mfa.c.user_id == user_id).values(enabled_at=at, last_step=step)
        )

    def accept_step(self, user_id: uuid.UUID, step: int) -> None:
        self._connection.execute(update(user_mfa).where(user_mfa.c.user_id == user_id).values(last_step=step))

    def remove(self, user_id: uuid.UUID) -> bool:
        self._connection.execute(delete(mfa_recovery_codes).where(mfa_recovery_codes.c.user_id == user_id))
        return bool(self._connection.execute(delete(user_mfa).where(user_mfa.c.user_id == user_id)).rowcount)

    def replace_recovery_codes(self, user_id: uuid.UUID, digests: list[bytes]) -> None:
        self._connection.execute(delete(mfa_recovery_codes).where(mfa_recovery_codes.c.user_id == user_id))
        self._connection.execute(
            insert(mfa_recovery_codes),
            [{"id": uuid.uuid4(), "user_id": user_id, "code_hash": d} for d in digests],
        )

    def spend_recovery_code(self, user_id: uuid.UUID, digest: bytes, at: datetime) -> bool:
        """Marks the unused code used; False when there is none (wrong, or already spent)."""
        result = self._connection.execute(
            update(mfa_recovery_codes)
            .where(
                mfa_recovery_codes.c.user_id == user_id,
                mfa_recovery_codes.c.code_hash == digest,
                mfa_recovery_codes.c.used_at.is_(None),
            )
            .values(used_at=at)
        )
        return bool(result.rowcount)

    def recovery_codes_left(self, user_id: uuid.UUID) -> int:
        return self._connection.execute(
            select(func.count())
            .select_from(mfa_recovery_codes)
            .where(mfa_recovery_codes.c.user_id == user_id, mfa_recovery_codes.c.used_at.is_(None))
        ).scalar_one()
