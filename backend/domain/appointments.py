"""Appointments: a client's booked time with the worker, and what each role may see of it."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from backend.domain.errors import Invalid

NOTES_MAX = 10_000


class AppointmentStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Appointment:
    """The worker's view. `notes` are the worker's private notes; `shared_notes` are meant
    for the client and are the only notes a client ever receives."""

    id: uuid.UUID
    client_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    status: AppointmentStatus
    notes: str | None
    shared_notes: str | None
    cancelled_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def is_upcoming(self, now: datetime) -> bool:
        return self.status is AppointmentStatus.SCHEDULED and self.starts_at > now

    def for_client(self) -> ClientAppointment:
        return ClientAppointment(
            id=self.id,
            client_id=self.client_id,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            status=self.status,
            shared_notes=self.shared_notes,
            cancelled_at=self.cancelled_at,
        )


@dataclass(frozen=True)
class ClientAppointment:
    """What a client may know of their own appointment: no private notes, no bookkeeping."""

    id: uuid.UUID
    client_id: uuid.UUID
    starts_at: datetime
    ends_at: datetime
    status: AppointmentStatus
    shared_notes: str | None
    cancelled_at: datetime | None


@dataclass(frozen=True)
class AppointmentFilter:
    """List filters. `client_id` is also how a client's own view is restricted."""

    client_id: uuid.UUID | None = None
    status: AppointmentStatus | None = None
    starts_from: datetime | None = None  # inclusive
    starts_before: datetime | None = None  # exclusive


def check_period(starts_at: datetime, ends_at: datetime) -> None:
    """Both instants carry a timezone and the period has a positive length."""
    problems: dict[str, list[str]] = {}
    for name, value in (("starts_at", starts_at), ("ends_at", ends_at)):
        if value.tzinfo is None or value.utcoffset() is None:
            problems[name] = ["a timezone offset is required"]
    if not problems and ends_at <= starts_at:
        problems["ends_at"] = ["must be after starts_at"]
    if problems:
        raise Invalid(problems)


def check_window(starts_from: datetime | None, starts_before: datetime | None) -> None:
    if starts_from is not None and starts_before is not None and starts_before <= starts_from:
        raise Invalid({"to": ["must be after from"]})
