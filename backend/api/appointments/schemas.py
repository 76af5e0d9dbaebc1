from datetime import UTC

import marshmallow as ma

from backend.domain.appointments import NOTES_MAX, AppointmentStatus

STATUSES = [s.value for s in AppointmentStatus]
NEW_STATUSES = [AppointmentStatus.SCHEDULED.value, AppointmentStatus.COMPLETED.value]
# Examples in the document: generators and fuzzers take them as values that work together
# (an appointment ends after it starts, a range's `to` is after its `from`).
STARTS = {"examples": ["2030-01-07T09:00:00+00:00"]}
ENDS = {"examples": ["2030-01-07T10:00:00+00:00"], "description": "Exclusive end, after starts_at"}


class Instant(ma.fields.AwareDateTime):
    """An ISO 8601 instant with its offset (a naive one is refused, never guessed) that is
    also an instant in UTC between years 1 and 9999: `0001-01-01T00:00:00+14:00` is in year 0
    in UTC, which PostgreSQL stores but Python cannot read back (it answered 500)."""

    def _deserialize(self, value, attr, data, **kwargs):
        instant = super()._deserialize(value, attr, data, **kwargs)
        try:
            instant.astimezone(UTC)
        except OverflowError:
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE) from None
        return instant


class AppointmentCreateSchema(ma.Schema):
    """A new appointment, booked by a worker: scheduled (the default) or already completed."""

    client_id = ma.fields.UUID(required=True)
    starts_at = Instant(required=True, metadata=STARTS)
    ends_at = Instant(required=True, metadata=ENDS)
    status = ma.fields.String(validate=ma.validate.OneOf(NEW_STATUSES))
    notes = ma.fields.String(
        allow_none=True,
        validate=ma.validate.Length(max=NOTES_MAX),
        metadata={"description": "The worker's private notes"},
    )
    shared_notes = ma.fields.String(
        allow_none=True,
        validate=ma.validate.Length(max=NOTES_MAX),
        metadata={"description": "Notes the client can read"},
    )


class AppointmentSchema(ma.Schema):
    """An appointment. Clients receive only their own, without `notes`, `created_at` and
    `updated_at` (the fields marked "workers only", the only ones not `required`)."""

    id = ma.fields.UUID(dump_only=True, required=True)
    client_id = ma.fields.UUID(dump_only=True, required=True)
    starts_at = ma.fields.AwareDateTime(dump_only=True, required=True)
    ends_at = ma.fields.AwareDateTime(
        dump_only=True, required=True, metadata={"description": "Exclusive end"}
    )
    status = ma.fields.String(dump_only=True, required=True, metadata={"enum": STATUSES})
    notes = ma.fields.String(
        dump_only=True, allow_none=True, metadata={"description": "The worker's private notes (workers only)"}
    )
    shared_notes = ma.fields.String(
        dump_only=True, required=True, allow_none=True, metadata={"description": "Notes the client can read"}
    )
    cancelled_at = ma.fields.AwareDateTime(dump_only=True, required=True, allow_none=True)
    created_at = ma.fields.AwareDateTime(dump_only=True, metadata={"description": "Workers only"})
    updated_at = ma.fields.AwareDateTime(dump_only=True, metadata={"description": "Workers only"})


class AppointmentUpdateSchema(ma.Schema):
    """What a worker may change; the client of an appointment is fixed once booked."""

    starts_at = Instant(metadata=STARTS)
    ends_at = Instant(metadata={**ENDS, "description": "Exclusive end, after the (new or stored) starts_at"})
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    notes = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=NOTES_MAX))
    shared_notes = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=NOTES_MAX))


class AppointmentQuerySchema(ma.Schema):
    client_id = ma.fields.UUID()
    status = ma.fields.String(validate=ma.validate.OneOf(STATUSES))
    starts_from = Instant(
        data_key="from",
        metadata={
            "description": "Appointments starting at or after this instant",
            "examples": ["2030-01-01T00:00:00+00:00"],
        },
    )
    starts_before = Instant(
        data_key="to",
        metadata={
            "description": "Appointments starting before this instant (after `from`)",
            "examples": ["2030-02-01T00:00:00+00:00"],
        },
    )
