"""Appointment use cases. Workers manage the workspace's calendar; a client sees and may
cancel only their own appointments, a restriction built into every query they cause."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime

from backend.domain.appointments import (
    Appointment,
    AppointmentFilter,
    AppointmentStatus,
    ClientAppointment,
    check_period,
    check_window,
)
from backend.domain.errors import Conflict, Forbidden, Invalid, NotFound
from backend.domain.identity import Principal, Role
from backend.service.ports import TenantUnitOfWork

View = Appointment | ClientAppointment
CREATE_STATUSES = (AppointmentStatus.SCHEDULED, AppointmentStatus.COMPLETED)


def own_client_id(viewer: Principal) -> uuid.UUID | None:
    """The client a viewer is restricted to: their own record for clients, none for workers."""
    if viewer.role is Role.WORKER:
        return None
    if viewer.client_id is None:  # a client without a client record sees nothing at all
        raise Forbidden("forbidden")
    return viewer.client_id


def require_worker(viewer: Principal) -> None:
    if viewer.role is not Role.WORKER:
        raise Forbidden("forbidden")


def _view(viewer: Principal, appointment: Appointment) -> View:
    return appointment if viewer.role is Role.WORKER else appointment.for_client()


def list_appointments(
    *, viewer: Principal, filters: AppointmentFilter, page: int, page_size: int, uow: TenantUnitOfWork
) -> tuple[list[View], int]:
    """Lists one page of appointments in time order; a client gets only their own."""
    check_window(filters.starts_from, filters.starts_before)
    own = own_client_id(viewer)
    if own is not None:
        if filters.client_id not in (None, own):
            return [], 0
        filters = replace(filters, client_id=own)
    with uow:
        items, total = uow.appointments.list_page(
            filters=filters, offset=(page - 1) * page_size, limit=page_size
        )
    return [_view(viewer, item) for item in items], total


def get_appointment(*, viewer: Principal, appointment_id: uuid.UUID, uow: TenantUnitOfWork) -> View:
    """Returns one appointment the viewer may see."""
    with uow:
        appointment = uow.appointments.get(appointment_id, client_id=own_client_id(viewer))
    if appointment is None:
        raise NotFound()
    return _view(viewer, appointment)


def create_appointment(
    *, viewer: Principal, fields: dict, now: datetime, uow: TenantUnitOfWork
) -> Appointment:
    """Books an appointment for a client of the workspace; an overlap is a conflict."""
    require_worker(viewer)
    check_period(fields["starts_at"], fields["ends_at"])
    status = AppointmentStatus(fields.get("status") or AppointmentStatus.SCHEDULED)
    if status not in CREATE_STATUSES:
        raise Invalid({"status": ["a new appointment is scheduled or completed"]})
    appointment = Appointment(
        id=uuid.uuid4(),
        client_id=fields["client_id"],
        starts_at=fields["starts_at"],
        ends_at=fields["ends_at"],
        status=status,
        notes=fields.get("notes"),
        shared_notes=fields.get("shared_notes"),
        cancelled_at=None,
        created_at=now,
        updated_at=now,
    )
    with uow:
        if not uow.clients.exists(appointment.client_id):
            raise NotFound("not_found", "client not found")
        created = uow.appointments.add(appointment)
        uow.commit()
    return created


def update_appointment(
    *,
    viewer: Principal,
    appointment_id: uuid.UUID,
    changes: dict,
    now: datetime,
    uow: TenantUnitOfWork,
) -> Appointment:
    """Changes an appointment's time, status or notes; an overlap is a conflict."""
    require_worker(viewer)
    changes = dict(changes)
    with uow:
        current = uow.appointments.get(appointment_id, for_update=True)
        if current is None:
            raise NotFound()
        check_period(changes.get("starts_at", current.starts_at), changes.get("ends_at", current.ends_at))
        if "status" in changes:
            status = AppointmentStatus(changes["status"])
            if status is AppointmentStatus.CANCELLED and current.status is not status:
                changes["cancelled_at"] = now
            elif status is not AppointmentStatus.CANCELLED:
                changes["cancelled_at"] = None
        updated = uow.appointments.update(appointment_id, changes, now)
        uow.commit()
    return updated


def delete_appointment(*, viewer: Principal, appointment_id: uuid.UUID, uow: TenantUnitOfWork) -> None:
    """Deletes an appointment for good; media linked to it stay with the client."""
    require_worker(viewer)
    with uow:
        if not uow.appointments.delete(appointment_id):
            raise NotFound()
        uow.commit()


def cancel_appointment(
    *, viewer: Principal, appointment_id: uuid.UUID, now: datetime, uow: TenantUnitOfWork
) -> View:
    """Cancels an upcoming appointment (a client: only their own); cancelling a cancelled
    one changes nothing; a past or completed one cannot be cancelled."""
    with uow:
        current = uow.appointments.get(appointment_id, client_id=own_client_id(viewer), for_update=True)
        if current is None:
            raise NotFound()
        if current.status is AppointmentStatus.CANCELLED:
            return _view(viewer, current)
        if not current.is_upcoming(now):
            raise Conflict("appointment_not_cancellable", "only upcoming appointments can be cancelled")
        updated = uow.appointments.update(
            appointment_id, {"status": AppointmentStatus.CANCELLED, "cancelled_at": now}, now
        )
        uow.commit()
    return _view(viewer, updated)
