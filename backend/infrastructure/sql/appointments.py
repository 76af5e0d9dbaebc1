"""Appointments (`appointments`, in the tenant schema) and their repository.

No two non-cancelled appointments of a workspace overlap: an exclusion constraint on the
half-open range [starts_at, ends_at) decides it inside PostgreSQL, so two concurrent
bookings of one slot cannot both commit (-> 409 appointment_overlap).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Table,
    Text,
    Uuid,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.engine import Connection

from backend.domain.appointments import Appointment, AppointmentFilter, AppointmentStatus
from backend.infrastructure.sql.metadata import tenant_metadata
from backend.infrastructure.sql.paging import page_with_total

OVERLAP_CONSTRAINT = "ex_appointments_no_overlap"

appointments = Table(
    "appointments",
    tenant_metadata,
    Column("id", Uuid, primary_key=True),
    # Deleting a client deletes their appointments (docs/domain.md).
    Column("client_id", Uuid, ForeignKey("clients.id", ondelete="CASCADE"), nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False, server_default=AppointmentStatus.SCHEDULED.value),
    Column("notes", Text),  # private to workers
    Column("shared_notes", Text),  # shown to the client
    Column("cancelled_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("status IN ('scheduled', 'completed', 'cancelled')", name="status"),
    CheckConstraint("ends_at > starts_at", name="period"),
    # The default list order and the date-range filter.
    Index("ix_appointments_starts_at_id", "starts_at", "id"),
    # A client's appointments (filter, the client's own view, the FK cascade).
    Index("ix_appointments_client_id_starts_at_id", "client_id", "starts_at", "id"),
    # The status filter, in list order.
    Index("ix_appointments_status_starts_at_id", "status", "starts_at", "id"),
)
appointments.append_constraint(
    ExcludeConstraint(
        (func.tstzrange(appointments.c.starts_at, appointments.c.ends_at), "&&"),
        name=OVERLAP_CONSTRAINT,
        using="gist",
        where=appointments.c.status != AppointmentStatus.CANCELLED.value,
    )
)

WRITABLE = ("starts_at", "ends_at", "status", "notes", "shared_notes", "cancelled_at")


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _to_appointment(row) -> Appointment:
    return Appointment(
        id=row.id,
        client_id=row.client_id,
        starts_at=_utc(row.starts_at),
        ends_at=_utc(row.ends_at),
        status=AppointmentStatus(row.status),
        notes=row.notes,
        shared_notes=row.shared_notes,
        cancelled_at=_utc(row.cancelled_at),
        created_at=_utc(row.created_at),
        updated_at=_utc(row.updated_at),
    )


def _conditions(filters: AppointmentFilter) -> list:
    conditions = []
    if filters.client_id is not None:
        conditions.append(appointments.c.client_id == filters.client_id)
    if filters.status is not None:
        conditions.append(appointments.c.status == filters.status.value)
    if filters.starts_from is not None:
        conditions.append(appointments.c.starts_at >= filters.starts_from)
    if filters.starts_before is not None:
        conditions.append(appointments.c.starts_at < filters.starts_before)
    return conditions


class SqlAppointmentRepository:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def add(self, appointment: Appointment) -> Appointment:
        row = self._connection.execute(
            insert(appointments)
            .values(
                id=appointment.id,
                client_id=appointment.client_id,
                starts_at=appointment.starts_at,
                ends_at=appointment.ends_at,
                status=appointment.status.value,
                notes=appointment.notes,
                shared_notes=appointment.shared_notes,
                cancelled_at=appointment.cancelled_at,
                created_at=appointment.created_at,
                updated_at=appointment.updated_at,
            )
            .returning(appointments)
        ).one()
        return _to_appointment(row)

    def get(
        self, appointment_id: uuid.UUID, *, client_id: uuid.UUID | None = None, for_update: bool = False
    ) -> Appointment | None:
        """One appointment; with `client_id`, only if it is that client's (a client's view)."""
        query = select(appointments).where(appointments.c.id == appointment_id)
        if client_id is not None:
            query = query.where(appointments.c.client_id == client_id)
        if for_update:
            query = query.with_for_update()
        row = self._connection.execute(query).first()
        return _to_appointment(row) if row is not None else None

    def update(self, appointment_id: uuid.UUID, changes: dict, now: datetime) -> Appointment | None:
        values = {key: changes[key] for key in WRITABLE if key in changes}
        if "status" in values:
            values["status"] = AppointmentStatus(values["status"]).value
        row = self._connection.execute(
            update(appointments)
            .where(appointments.c.id == appointment_id)
            .values(**values, updated_at=now)
            .returning(appointments)
        ).first()
        return _to_appointment(row) if row is not None else None

    def delete(self, appointment_id: uuid.UUID) -> bool:
        result = self._connection.execute(delete(appointments).where(appointments.c.id == appointment_id))
        return result.rowcount > 0

    def list_page(
        self, *, filters: AppointmentFilter, offset: int, limit: int
    ) -> tuple[list[Appointment], int]:
        page = (
            select(appointments)
            .where(*_conditions(filters))
            .order_by(appointments.c.starts_at, appointments.c.id)
        )
        rows, total = page_with_total(self._connection, page, offset=offset, limit=limit)
        return [_to_appointment(row) for row in rows], total
